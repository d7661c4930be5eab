"The memory estimator (Section 6) and `omr-blog fit`: behaviour, not the committed validation numbers."
import subprocess, sys
from pathlib import Path
import pytest, torch
from omr_blog.core import OmrBlogError
from omr_blog.memory import estimate_by_batch, estimate_memory, fit_advice, parse_memory, saved_activation_bytes
from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR
from omr_blog.config import make_config

BIN = Path(sys.executable).parent/'omr-blog'

@pytest.mark.parametrize('backbone', ['resnet50', 'vit_small', 'swin_tiny'])
def test_meta_device_counts_the_bytes_a_real_forward_saves(backbone):
    "The estimator's activations (meta device, no storage) equal what autograd saves in a real CPU forward pass."
    dec = DecoderConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_len=32)
    torch.manual_seed(0)
    real = MusicTrOCR(ModelConfig(backbone, 'tiny', False, dec)).train()
    with torch.device('meta'): meta = MusicTrOCR(ModelConfig(backbone, 'tiny', False, dec)).train()
    def inputs(device):
        return (torch.rand(2, 3, 64, 256, device=device), torch.ones(2, 64, 256, dtype=torch.bool, device=device),
                torch.randint(3, 64, (2, 20), device=device))
    real_bytes, _ = saved_activation_bytes(real, *inputs('cpu'))
    meta_bytes, _ = saved_activation_bytes(meta, *inputs('meta'))
    assert meta_bytes == pytest.approx(real_bytes, rel=0.02)

def test_estimates_follow_the_modes_and_the_batch():
    full = estimate_memory(make_config('cpu-tiny', 'vit_small'), batch_size=4, width=256, seq_len=64)
    lora = estimate_memory(make_config('cpu-tiny', 'vit_small', finetune='lora'), batch_size=4, width=256, seq_len=64)
    qlora = estimate_memory(make_config('cpu-tiny', 'vit_small', finetune='qlora'), batch_size=4, width=256, seq_len=64)
    frozen = estimate_memory(make_config('cpu-tiny', 'vit_small', finetune='frozen'), batch_size=4, width=256, seq_len=64)
    assert frozen.trainable < lora.trainable < full.trainable and lora.optimizer < full.optimizer
    assert qlora.weights < lora.weights and qlora.trainable == lora.trainable
    assert frozen.activations < full.activations       # no graph through a frozen backbone
    at = estimate_by_batch(make_config('cpu-tiny', 'resnet50'))
    assert at(16).activations > at(8).activations > at(1).activations
    half = estimate_memory(make_config('cpu-tiny', 'resnet50'), precision='bf16')
    assert half.activations < estimate_memory(make_config('cpu-tiny', 'resnet50'), precision='fp32').activations   # pinned: 'auto' is bf16 on some CPUs

def test_parse_memory_and_bad_budgets():
    assert parse_memory('16GB') == parse_memory('16 GiB') == 16 * 2**30 and parse_memory('512MB') == 512 * 2**20
    for bad in ('lots', '-3GB', '0', '16TB'):
        with pytest.raises(OmrBlogError, match='not a memory size'): parse_memory(bad)

def test_fit_advice_never_exceeds_the_budget():
    adv = fit_advice('12GB', backbones=['resnet50', 'convnext_tiny'])
    for r in adv['rows']:
        assert r['estimate_gib'] is None or r['estimate_gib'] <= 12 * 0.9 - 1
        if r['batch']: assert r['accumulation'] * r['batch'] >= 32
    assert adv['best'] is None or adv['best']['batch'] >= 1

@pytest.mark.slow
def test_fit_cli_prints_advice_and_one_line_errors():
    r = subprocess.run([str(BIN), 'fit', '--vram', '24GB', '--backbone', 'resnet50'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'advice: resnet50' in r.stdout, r.stderr
    r = subprocess.run([str(BIN), 'fit', '--vram', 'lots'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'not a memory size' in r.stderr
    r = subprocess.run([str(BIN), 'fit', '--vram', '1MB', '--backbone', 'resnet50'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'nothing fits' in r.stderr

@pytest.mark.slow
def test_efficiency_study_says_which_command_makes_a_missing_source(monkeypatch, tmp_path):
    from omr_blog.studies import run_training_study
    monkeypatch.setenv('OMR_BLOG_RUNS', str(tmp_path))
    monkeypatch.setattr('omr_blog.studies.FINETUNE_BACKBONES', ('vit_small',))
    with pytest.raises(OmrBlogError, match='omr-blog sweep'): run_training_study('finetune', progress=False)

def test_fit_is_scaled_by_the_gpu_measurements(tmp_path):
    "A committed GPU estimator record that measured 1.5x the estimate makes fit choose from 1.5x the estimates."
    from omr_blog.core import write_json
    from omr_blog.memory import ESTIMATOR_VERSION, fit_rows, gpu_calibration
    rows = [{'backbone': 'resnet50', 'batch': 4, 'ratio': 1.2}, {'backbone': 'resnet50', 'batch': 8, 'ratio': 1.5},
            {'backbone': 'vit_small', 'batch': 4, 'ratio': 0.9}]
    record = {'stage': 'estimator', 'status': 'ok', 'gpu': 'NVIDIA H100', 'dry_run': False, 'rows': rows,
              'provenance': {'hardware': {'gpu': 'NVIDIA H100'}, 'created': 'x'}}
    write_json(tmp_path/'nvidia-h100/suite/estimator.json', record)
    assert gpu_calibration('gpu-full', tmp_path) == {}             # ratios against an older estimator do not scale this one
    write_json(tmp_path/'nvidia-h100/suite/estimator.json', {**record, 'estimator_version': ESTIMATOR_VERSION})
    cal = gpu_calibration('gpu-full', tmp_path)
    assert cal == {'gpu': 'NVIDIA H100', 'factor': {'resnet50': 1.5, 'vit_small': 1.0}}   # an overestimate is not scaled down
    assert gpu_calibration('cpu-tiny', tmp_path) == {}                                  # the suite measured gpu-full only
    smaller = []
    for gib in (16, 24, 32, 48):
        plain = {r['mode']: r for r in fit_rows(gib * 2**30, backbones=['resnet50'])}
        scaled = {r['mode']: r for r in fit_rows(gib * 2**30, backbones=['resnet50'], calibration=cal)}
        assert scaled['full']['batch1_gib'] == pytest.approx(1.5 * plain['full']['batch1_gib'], rel=0.01)
        assert scaled['full']['batch'] <= plain['full']['batch'] and scaled['full']['calibration'] == 1.5
        smaller.append(scaled['full']['batch'] < plain['full']['batch'])
    assert any(smaller)                                             # somewhere the measured factor costs a micro-batch

def test_a_gpu_counts_masked_attention_fused():
    "On 'cuda' the decoder's masked cross-attention keeps no T x N weights; on 'cpu' (PyTorch runs it unfused) it keeps them."
    cfg = make_config('cpu-tiny', 'vit_small')
    B, W, T = 2, 256, 64
    cpu, gpu = (estimate_memory(cfg, batch_size=B, width=W, seq_len=T, precision='fp32', device=d) for d in ('cpu', 'cuda'))
    with torch.device('meta'): stride = MusicTrOCR(ModelConfig(cfg.backbone, cfg.backbone_size, False, cfg.decoder)).backbone.stride
    weights = cfg.decoder.n_layers * B * cfg.decoder.n_heads * T * (cfg.height // stride) * (W // stride) * 4   # fp32 softmax output, per layer
    assert cpu.activations - gpu.activations >= weights
    assert cpu.weights == gpu.weights and cpu.optimizer == gpu.optimizer
