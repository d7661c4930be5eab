"""The GPU suite (benchmarks/gpu_suite.py) rehearsed on the CPU: the same code paths with tiny sizes, so that it cannot
rot between the rare, short GPU visits. The carry folder is prepared from the tiny dataset (no wheels)."""
import json, sys
from pathlib import Path
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'benchmarks'))
import gpu_suite  # noqa: E402

pytestmark = pytest.mark.slow

@pytest.fixture(scope='module')
def carry(tmp_path_factory):
    out = tmp_path_factory.mktemp('carry')
    gpu_suite.main(['prep', '--out', str(out), '--pages', 'omr-synth-tiny', '--strips', 'omr-synth-tiny', '--n-pages', '3',
                    '--n-strips', '24', '--n-eval', '4', '--page-height', '64', '--no-wheels', '--allow-dirty'])
    return out

def run(carry, out, *args):
    gpu_suite.main(['run', '--dry-run', '--data', str(carry), '--out', str(out), *args])
    return {p.stem: json.loads(p.read_text()) for p in Path(out).glob('*.json')}

def test_prep_writes_what_the_suite_reads(carry):
    info = json.loads((carry/'prep.json').read_text())
    assert info['pages']['pages'] == 3 and info['strips']['sizes'] == {'train': 24, 'val': 4, 'test': 4}
    assert info['git']['commit'] and (carry/'pages.parquet').exists() and (carry/'tokenizer'/'tokenizer.json').exists()
    assert (carry/'strips'/'tokenizer-512'/'tokenizer.json').exists()   # stage 5 trains with the sweep's own BPE

def test_dry_run_writes_every_stage(carry, tmp_path):
    recs = run(carry, tmp_path)
    assert set(recs) == set(gpu_suite.STAGES)
    for name, r in recs.items():
        assert r['status'] == 'ok' and r['rows'], name
        assert r['dry_run'] and r['provenance']['git']['commit'] and 'cpu' in r['provenance']['hardware']
    steps = recs['train_step']['rows']
    assert {r['backbone'] for r in steps} == set(gpu_suite.BACKBONES) and all(r['status'] == 'ok' for r in steps)
    assert all(r['flops_per_step'] > 0 and r['samples_per_s'] > 0 and r['tokens_per_s'] > r['samples_per_s'] for r in steps)
    assert all(0 < r['encoder_flops_per_step'] < r['flops_per_step'] for r in steps)   # the encoder's share, for the paradox
    b1, b2 = (next(r for r in steps if r['backbone'] == 'resnet50' and r['batch'] == B) for B in (1, 2))
    assert b2['flops_per_step'] > 1.5 * b1['flops_per_step']       # counted FLOPs grow with the batch
    est = recs['estimator']['rows']
    assert len(est) == len(steps) and all(r['estimate_bytes'] > 0 for r in est)
    dec = recs['decoding']['rows']
    greedy = {(r['impl'], r['batch']) for r in dec if r['what'] == 'greedy'}
    assert greedy == {(i, b) for i in ('ours: KV cache', 'ours: static cache', 'transformers') for b in (1, 2)}
    assert {r['impl'] for r in dec if r['what'] == 'train_step'} == {'ours', 'transformers'}
    ft = recs['finetune']['rows']
    assert [(r['backbone'], r['finetune']) for r in ft] == [(b, m) for b in ('vit_small', 'convnext_tiny') for m in ('full', 'lora', 'qlora')]
    assert all(r['status'] == 'ok' for r in ft) and ft[1]['trainable'] < ft[0]['trainable']   # LoRA trains less than full
    strips = recs['strips']['rows']
    assert len(strips) == 7 and all(r['status'] == 'ok' and r['steps'] == 3 and r['curve'] for r in strips)

def test_an_oom_is_a_record_not_a_crash(carry, tmp_path, monkeypatch):
    real = gpu_suite.train_step
    def small_gpu(s, model, opt, b):
        if b['images'].shape[0] > 1: raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return real(s, model, opt, b)
    monkeypatch.setattr(gpu_suite, 'train_step', small_gpu)
    recs = run(carry, tmp_path, '--stages', 'train_step', 'estimator', '--batches', '1', '2', '4')
    rows = recs['train_step']['rows']
    for bb in gpu_suite.BACKBONES:
        mine = [(r['batch'], r['status']) for r in rows if r['backbone'] == bb]
        assert mine == [(1, 'ok'), (2, 'oom')], mine                 # batch 4 is not tried after batch 2 ran out
    assert all('out of memory' in r['error'] for r in rows if r['status'] == 'oom')
    assert len(recs['estimator']['rows']) == len(gpu_suite.BACKBONES)   # estimates only where a peak was measured

def test_a_failing_stage_does_not_stop_the_next(carry, tmp_path, monkeypatch):
    def broken(s): raise RuntimeError('no kernel image is available for execution on the device')
    monkeypatch.setattr(gpu_suite, 'stage_decoding', broken)
    recs = run(carry, tmp_path, '--stages', 'decoding', 'finetune')
    assert recs['decoding']['status'] == 'failed' and 'no kernel image' in recs['decoding']['error'] and not recs['decoding']['rows']
    assert recs['finetune']['status'] == 'ok'

def test_an_exhausted_budget_skips_stages_and_still_writes(carry, tmp_path):
    recs = run(carry, tmp_path, '--budget-s', '0')
    assert set(recs) == set(gpu_suite.STAGES) and all(r['status'] == 'skipped' for r in recs.values())

def test_prep_refuses_a_dirty_tree(tmp_path, monkeypatch):
    import omr_blog.core
    monkeypatch.setattr(omr_blog.core, 'git_state', lambda root=None: {'commit': 'abc', 'dirty': True})
    with pytest.raises(SystemExit, match='uncommitted changes'):
        gpu_suite.main(['prep', '--out', str(tmp_path), '--pages', 'omr-synth-tiny', '--strips', 'omr-synth-tiny', '--no-wheels'])
    assert not any(tmp_path.iterdir())                               # nothing half-written

def test_peak_rate_by_gpu_name():
    assert gpu_suite.peak_bf16_flops('NVIDIA H100 80GB HBM3') == 989e12 and gpu_suite.peak_bf16_flops('NVIDIA H100 PCIe') == 756e12
    assert gpu_suite.peak_bf16_flops('NVIDIA H200') == 989e12 and gpu_suite.peak_bf16_flops('Some Future GPU') is None

def test_plan_counts_the_steps_of_the_gpu_sizes(carry, capsys):
    gpu_suite.main(['plan', '--data', str(carry), '--out', str(carry/'plan'), '--batches', '4', '--finetune-backbones'])
    out = capsys.readouterr().out
    assert out.count('TFLOP/step x 7 steps') == len(gpu_suite.BACKBONES) and 'stages 1-4 ~' in out

def test_collect_refuses_a_rehearsal(carry, tmp_path):
    run(carry, tmp_path, '--stages', 'estimator', '--budget-s', '0')
    with pytest.raises(SystemExit, match='rehearsal'):
        gpu_suite.main(['collect', str(tmp_path)])
    assert gpu_suite.gpu_slug('NVIDIA H100 80GB HBM3') == 'nvidia-h100-80gb-hbm3'

def test_estimate_checks_a_new_estimator_against_peaks_already_measured(carry, tmp_path):
    from omr_blog.memory import ESTIMATOR_VERSION
    recs = run(carry, tmp_path, '--stages', 'train_step', '--batches', '1')
    with pytest.raises(SystemExit, match='rehearsal'):                 # a dry run measured no GPU peak
        gpu_suite.main(['estimate', str(tmp_path), '--data', str(carry)])
    gpu_prov = {'hardware': {'gpu': 'NVIDIA H200'}, 'created': 'then'}
    row = {'backbone': 'resnet50', 'batch': 1, 'width': 256, 'seq_len': 64, 'status': 'ok', 'peak_vram_bytes': 10**9}
    (tmp_path/'train_step.json').write_text(json.dumps({**recs['train_step'], 'dry_run': False, 'gpu': 'NVIDIA H200',
                                                        'precision': 'bfloat16', 'rows': [row], 'provenance': gpu_prov}))
    gpu_suite.main(['estimate', str(tmp_path), '--data', str(carry)])
    est = json.loads((tmp_path/'estimator.json').read_text())
    assert est['estimator_version'] == ESTIMATOR_VERSION and est['provenance'] == gpu_prov and est['estimated']['git']['commit']
    (r,) = est['rows']
    assert r['measured_bytes'] == 10**9 and r['ratio'] == pytest.approx(10**9 / r['estimate_bytes'])

@pytest.mark.parametrize('groups', [1, 4, 64])
def test_a_convolution_backward_counts_twice_its_forward(groups):
    "Input gradient and weight gradient each cost one forward, grouped or not (torch's own formula over-counts groups)."
    from torch.utils.flop_counter import FlopCounterMode
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=groups)
    for needs_input_grad, per_forward in ((True, 2), (False, 1)):
        x = torch.rand(2, 64, 16, 16, requires_grad=needs_input_grad)
        with FlopCounterMode(display=False) as fwd: y = conv(x)
        with gpu_suite.flop_counter() as bwd: y.sum().backward()
        assert bwd.get_total_flops() == per_forward * fwd.get_total_flops()

def test_records_name_the_commit_prep_saw_only_for_the_same_code(carry, tmp_path, monkeypatch):
    "The GPU machine's copy can carry a stale git: the prep's commit holds when the code is the code prep hashed."
    import argparse
    prep = json.loads((carry/'prep.json').read_text())
    s = gpu_suite.Suite(argparse.Namespace(dry_run=True, batches=None, data=str(carry), out=str(tmp_path), budget_s=1.0))
    monkeypatch.setattr('omr_blog.core.git_state', lambda root=None: {'commit': 'stale', 'dirty': True})
    assert s.provenance()['git'] == {**prep['git'], 'from': 'gpu-prep'}            # same code: prep's commit
    monkeypatch.setattr(gpu_suite, 'source_hash', lambda: 'changed')
    assert s.provenance()['git'] == {'commit': 'stale', 'dirty': True}             # changed code: git's own (dirty) view
    monkeypatch.setattr('omr_blog.core.git_state', lambda root=None: {'commit': None, 'dirty': None})
    assert s.provenance()['git']['dirty'] is True                                  # no git there: prep's commit, marked dirty
