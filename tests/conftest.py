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
