"Fine-tuning modes (03b_finetune) and distillation inside the real training loop (tiny dataset, a few steps)."
import json
import pytest, torch
from safetensors.torch import load_file
from omr_blog.core import OmrBlogError
from omr_blog.checkpoints import load_checkpoint
from omr_blog.config import make_config
from omr_blog.train import train
from omr_blog.evaluation import evaluate_split
from omr_blog.dataset import load_omr_dataset

pytestmark = pytest.mark.slow   # trains, runs papermill or a browser: not in make test-fast

DEC = {'d_model': 64, 'n_layers': 1, 'n_heads': 4, 'd_ff': 128, 'max_len': 48}

def _cfg(tiny_dir, out, backbone='convnext_tiny', **kw):
    return make_config('cpu-tiny', backbone, **{**dict(dataset=str(tiny_dir), max_steps=3, batch_size=4, effective_batch=4,
                       ckpt_every=2, log_every=1, eval_samples=4, eval_batch_size=4, omr_ned_samples=0, wandb=False,
                       out_dir=str(out), lr=2e-3, decoder=DEC, precision='fp32'), **kw})   # pinned: 'auto' differs by CPU

@pytest.fixture(scope='module')
def source(tiny_dir, tmp_path_factory):
    "A trained checkpoint per backbone: the 'pretrained' backbone the fine-tuning modes start from."
    def make(backbone):
        out = tmp_path_factory.mktemp(f'src-{backbone}')
        assert train(_cfg(tiny_dir, out, backbone), progress=False)['status'] == 'ok'
        return out/'checkpoint'
    return {b: make(b) for b in ('convnext_tiny', 'resnet50')}

@pytest.mark.parametrize('mode', ['frozen', 'lora', 'qlora'])
def test_mode_trains_only_its_part_and_its_checkpoint_reloads(tiny_dir, tmp_path, source, mode):
    src = load_file(str(source['convnext_tiny']/'model.safetensors'))
    r = train(_cfg(tiny_dir, tmp_path, init_from=str(source['convnext_tiny']), finetune=mode), progress=False)
    assert r['status'] == 'ok' and 0 < r['params']['trainable'] < r['params']['total']
    saved = load_file(str(tmp_path/'checkpoint'/'model.safetensors'))
    backbone_saved = [k for k in saved if k.startswith('backbone.')]
    if mode == 'frozen': assert not any(k in saved for k in src if k.startswith('backbone.') and 'running' not in k and 'num_batches' not in k)
    else: assert backbone_saved and all('lora_' in k for k in backbone_saved if 'weight' in k and 'running' not in k)
    assert len(saved) < len(src) or mode != 'frozen'
    # the checkpoint (adapters + decoder) plus init_from (frozen weights) gives back the same model
    model, tok, cfg = load_checkpoint(tmp_path/'checkpoint')
    spec = cfg.image_spec(model.backbone.multiple)
    again = evaluate_split(model, load_omr_dataset(tiny_dir)['test'], tok, spec, 4, 4, torch.device('cpu'), max_new_tokens=cfg.eval_max_new_tokens)
    assert again['loss'] == pytest.approx(r['metrics']['test']['loss'], rel=1e-3)

def test_frozen_backbone_weights_do_not_move(tiny_dir, tmp_path, source):
    r = train(_cfg(tiny_dir, tmp_path, init_from=str(source['resnet50']), backbone='resnet50', finetune='frozen'), progress=False)
    model, _, _ = load_checkpoint(tmp_path/'checkpoint')
    src = load_file(str(source['resnet50']/'model.safetensors'))
    for k, v in model.state_dict().items():
        if k.startswith('backbone.'): assert torch.equal(v, src[k]), k   # BatchNorm statistics included: eval mode while frozen
    dec = [k for k in src if k.startswith('decoder.') and k.endswith('weight')][0]
    assert not torch.equal(model.state_dict()[dec], src[dec])   # the decoder did train

def test_lora_resume_equals_uninterrupted(tiny_dir, tmp_path, source):
    kw = dict(init_from=str(source['resnet50']), backbone='resnet50', finetune='lora', lora_rank=4, max_steps=4)
    a = train(_cfg(tiny_dir, tmp_path/'a', **kw), progress=False)
    train(_cfg(tiny_dir, tmp_path/'b', **kw), progress=False, stop_after=2)
    b = train(_cfg(tiny_dir, tmp_path/'b', **kw), progress=False)
    la = [json.loads(l)['loss'] for l in (tmp_path/'a'/'log.jsonl').read_text().splitlines()]
    lb = [json.loads(l)['loss'] for l in (tmp_path/'b'/'log.jsonl').read_text().splitlines()]
    assert b['steps'] == 4 and lb[-1] == pytest.approx(la[-1], rel=1e-5)

def test_distillation_runs_and_checks_the_teacher(tiny_dir, tmp_path, source):
    r = train(_cfg(tiny_dir, tmp_path/'s', distill_from=str(source['resnet50'])), progress=False)
    assert r['status'] == 'ok'
    with pytest.raises(OmrBlogError, match='teacher reads'):
        train(_cfg(tiny_dir, tmp_path/'h', distill_from=str(source['resnet50']), height=48), progress=False)

def test_bad_modes_say_so(tiny_dir, tmp_path, source):
    with pytest.raises(OmrBlogError, match='QLoRA quantises Linear layers'):
        train(_cfg(tiny_dir, tmp_path/'q', backbone='resnet50', finetune='qlora'), progress=False)
    with pytest.raises(OmrBlogError, match='unknown fine-tuning mode'):
        train(_cfg(tiny_dir, tmp_path/'m', finetune='half'), progress=False)
    with pytest.raises(OmrBlogError, match='does not fit'):
        train(_cfg(tiny_dir, tmp_path/'w', init_from=str(source['resnet50'])), progress=False)   # ResNet weights into ConvNeXt
