import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('WANDB_MODE', 'offline')
import pytest

@pytest.fixture(scope='session')
def tiny_dir():
    "The tiny dataset (built by `make tiny-data`; built here when missing)."
    from omr_blog.dataset import build_dataset
    return build_dataset('tiny', progress=False)

@pytest.fixture(scope='session')
def tiny(tiny_dir):
    from omr_blog.dataset import load_omr_dataset
    return load_omr_dataset(tiny_dir)

@pytest.fixture(scope='session')
def tokenizer(tiny_dir):
    from omr_blog.tokenizer import train_dataset_tokenizer
    return train_dataset_tokenizer(tiny_dir)

@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_dir, tmp_path_factory):
    "A checkpoint of a 2-step run on the tiny dataset: a real checkpoint folder, not a good model."
    from omr_blog.config import make_config
    from omr_blog.train import train
    out = tmp_path_factory.mktemp('run')
    train(make_config('cpu-tiny', 'resnet50', dataset=str(tiny_dir), max_steps=2, batch_size=2, effective_batch=2, eval_samples=2,
                      omr_ned_samples=0, wandb=False, out_dir=str(out), decoder={'max_len': 32}, precision='fp32'), progress=False)
    return out/'checkpoint'


def pytest_collection_modifyitems(items):
    "A test that needs a trained checkpoint trains one first: it is slow (not in `make test-fast`)."
    for item in items:
        if 'tiny_checkpoint' in getattr(item, 'fixturenames', ()): item.add_marker(pytest.mark.slow)
