import json, os, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
import pytest
from omr_blog.core import OmrBlogError, read_jsonl
from omr_blog.config import lr_at, make_config
from omr_blog.train import train

def _cfg_kwargs(tiny_dir, out):
    "A run small enough for a test: 10 optimizer steps of a one-layer 64-wide decoder."
    return dict(dataset=str(tiny_dir), max_steps=10, batch_size=4, effective_batch=8, ckpt_every=3, log_every=1,
                eval_samples=4, eval_batch_size=4, wandb=False, out_dir=str(out), lr=2e-3, precision='fp32',   # pinned: 'auto' differs by CPU
                decoder={'d_model': 64, 'n_layers': 1, 'n_heads': 4, 'd_ff': 128, 'max_len': 48})

def _cfg(tiny_dir, out, **kw):
    return make_config('cpu-tiny', 'resnet50', **{**_cfg_kwargs(tiny_dir, out), **kw})

def _losses(out): return [json.loads(l)['loss'] for l in (Path(out)/'log.jsonl').read_text().splitlines()]

def test_schedule_warms_up_then_decays():
    c = make_config('cpu-tiny', max_steps=1000, lr=1.0, warmup=0.03, min_lr_ratio=0.1)
    lrs = [lr_at(s, c) for s in range(1000)]
    assert lrs[0] < lrs[15] < lrs[29] == 1.0 and lrs[29] > lrs[500] > lrs[999] >= 0.1

@pytest.mark.slow
def test_killed_run_resumes_to_the_same_final_loss(tiny_dir, tmp_path):
    a = train(_cfg(tiny_dir, tmp_path/'a'), progress=False)
    assert a['status'] == 'ok' and a['steps'] == 10
    code = ('from omr_blog.config import make_config; from omr_blog.train import train; import json; '
            f'cfg = make_config("cpu-tiny", "resnet50", **json.loads({json.dumps(json.dumps(_cfg_kwargs(tiny_dir, tmp_path/"b")))})); '
            'train(cfg, progress=False)')
    p = subprocess.Popen([sys.executable, '-c', code], start_new_session=True)
    log = tmp_path/'b'/'log.jsonl'
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 7: break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (tmp_path/'b'/'result.json').exists(), 'the run finished before it could be killed'
    b = train(_cfg(tiny_dir, tmp_path/'b'), progress=False)   # resumes from the step-6 checkpoint
    assert b['steps'] == 10
    la, lb = _losses(tmp_path/'a'), _losses(tmp_path/'b')
    assert lb[-1] == pytest.approx(la[-1], rel=1e-5, abs=1e-6)
    assert a['metrics']['test']['ser'] == pytest.approx(b['metrics']['test']['ser'])

@pytest.mark.slow
def test_run_record_has_provenance_and_measurements(tiny_dir, tmp_path):
    r = train(_cfg(tiny_dir, tmp_path, max_steps=3), progress=False)
    saved = json.loads((tmp_path/'result.json').read_text())
    for k in ('config', 'samples_per_s', 'tokens_per_s', 'time_per_epoch_s', 'peak_memory_mb', 'precision_resolved', 'threads', 'params', 'val_loss', 'seed'):
        assert saved[k] is not None, k
    assert saved['dataset']['fingerprint'] and saved['provenance']['git'] and saved['provenance']['hardware']['cpu_cores'] >= 1
    assert set(saved['metrics']) >= {'val', 'test'} and saved['params']['total'] > saved['params']['encoder'] > 0

@pytest.mark.slow
def test_nan_loss_stops_the_run_with_a_status(tiny_dir, tmp_path, monkeypatch):
    import omr_blog.train as T
    orig = T.lm_loss
    monkeypatch.setattr(T, 'lm_loss', lambda *a: orig(*a) * float('nan'))
    r = train(_cfg(tiny_dir, tmp_path), progress=False)
    assert r['status'] == 'nan' and 'step 0' in r['error'] and 'metrics' not in r

def test_unknown_preset_and_field():
    with pytest.raises(OmrBlogError, match='unknown preset'): make_config('nope', 'resnet50')
    with pytest.raises(OmrBlogError, match='unknown config field'): make_config('cpu-tiny', 'resnet50', learning_rate=1)
    for bad in (0, 1.5, 26.5):   # a share, not a percentage: a fit to 26.5 would crop the image to nothing
        with pytest.raises(OmrBlogError, match=f'staff_share {bad}: a share of the image height'): make_config('cpu-tiny', 'resnet50', staff_share=bad)
    assert make_config('cpu-tiny', 'resnet50', staff_share=0.265).staff_share == 0.265

@pytest.mark.slow
def test_sweep_runs_the_notebook_records_failures_and_skips_done(tiny_dir, tmp_path, monkeypatch):
    from omr_blog import sweep as S
    monkeypatch.setenv('OMR_BLOG_RUNS', str(tmp_path/'runs'))
    over = {k: v for k, v in _cfg_kwargs(tiny_dir, '').items() if k != 'out_dir'}
    over.update(max_steps=2, eval_samples=2)
    rows = S.sweep('cpu-tiny', ['resnet50'], over, dest=tmp_path/'results', progress=False)
    assert rows[0]['status'] == 'ok' and (tmp_path/'runs'/'cpu-tiny'/'resnet50'/'train_backbone.ipynb').exists()
    assert rows[0]['test_ser'] is not None and rows[0]['test_music_ser'] is not None
    # the post reads the committed log and test predictions, not runs/
    assert (tmp_path/'results'/'logs'/'resnet50.jsonl').read_text() == (tmp_path/'runs'/'cpu-tiny'/'resnet50'/'log.jsonl').read_text()
    assert len((tmp_path/'results'/'predictions'/'resnet50-test.jsonl').read_text().splitlines()) == 2
    mtime = (tmp_path/'runs'/'cpu-tiny'/'resnet50'/'result.json').stat().st_mtime
    bad = {**over, 'height': -5}   # an impossible config: the run fails, the sweep records it and goes on
    rows = [S.run_backbone('vit_small', 'cpu-tiny', bad, progress=False), S.run_backbone('resnet50', 'cpu-tiny', over, progress=False)]
    assert rows[0]['status'] == 'failed' and rows[0]['error']
    assert (tmp_path/'runs'/'cpu-tiny'/'resnet50'/'result.json').stat().st_mtime == mtime   # finished run skipped
    # in lanes: two runs at a time, each with its share of the threads, the same training, records that say so
    import torch
    monkeypatch.setenv('OMR_BLOG_RUNS', str(tmp_path/'lanes'))
    rows = S.sweep('cpu-tiny', ['resnet50', 'convnext_tiny'], over, dest=tmp_path/'results-lanes', progress=False, lanes=2)
    assert [r['backbone'] for r in rows] == ['resnet50', 'convnext_tiny'] and all(r['status'] == 'ok' for r in rows)
    rec = json.loads((tmp_path/'results-lanes'/'resnet50.json').read_text())
    assert rec['lanes'] == 2 and rec['threads'] == max(1, torch.get_num_threads() // 2)
    assert json.loads((tmp_path/'results-lanes'/'summary.json').read_text())['lanes'] == 2
    alone, laned = (read_jsonl(tmp_path/d/'logs'/'resnet50.jsonl') for d in ('results', 'results-lanes'))
    assert [r['step'] for r in alone] == [r['step'] for r in laned]
    assert all(abs(a['loss'] - b['loss']) < 1e-2 * a['loss'] for a, b in zip(alone, laned))   # thread count: rounding only
    with pytest.raises(OmrBlogError, match='lanes'): S.sweep('cpu-tiny', ['resnet50'], over, lanes=0)

def test_preset_base_is_merged_and_overridable():
    from omr_blog.config import make_config
    tiny, long = make_config('cpu-tiny', 'resnet50'), make_config('cpu-long', 'resnet50', decoder={'n_layers': 3})
    assert long.preset == 'cpu-long' and long.max_steps > tiny.max_steps and long.lr == tiny.lr
    assert long.decoder == replace(tiny.decoder, n_layers=3)

@pytest.mark.slow
def test_mid_run_evaluation_logs_a_val_curve_without_changing_the_run(tiny_dir, tmp_path):
    "eval_every adds val music SER to the log at its steps; the losses are those of the same run without it."
    plain = train(_cfg(tiny_dir, tmp_path/'plain', max_steps=6, log_every=2), progress=False)
    curve = train(_cfg(tiny_dir, tmp_path/'curve', max_steps=6, log_every=2, eval_every=4), progress=False)
    log = [json.loads(l) for l in (tmp_path/'curve'/'log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log if 'val_music_ser' in r] == [4]
    assert _losses(tmp_path/'curve') == pytest.approx(_losses(tmp_path/'plain'), rel=1e-5, abs=1e-6)
    assert curve['metrics']['val']['music_ser'] == pytest.approx(plain['metrics']['val']['music_ser'])

def test_a_finished_run_on_data_since_rebuilt_is_not_reused(tiny_dir, tmp_path):
    "is_done: the same config is reused only if the record's dataset fingerprint is the built dataset's, and its code's training revision ours."
    from dataclasses import asdict
    from omr_blog.dataset import build_report
    from omr_blog.checkpoints import TRAINING_REVISION
    from omr_blog.train import is_done
    cfg = _cfg(tiny_dir, tmp_path)
    rec = {'status': 'ok', 'config': asdict(cfg), 'dataset': {'name': str(tiny_dir), 'fingerprint': build_report(tiny_dir)['fingerprint']},
           'training_revision': TRAINING_REVISION}
    (tmp_path/'result.json').write_text(json.dumps(rec))
    assert is_done(tmp_path, cfg) == rec
    older = {k: v for k, v in rec.items() if k != 'training_revision'}   # trained before the BatchNorm fix changed what it means
    (tmp_path/'result.json').write_text(json.dumps(older))
    assert is_done(tmp_path, cfg) is None
    (tmp_path/'result.json').write_text(json.dumps({**rec, 'dataset': {**rec['dataset'], 'fingerprint': 'another build'}}))
    assert is_done(tmp_path, cfg) is None

def test_same_config_ignores_only_what_it_is_told():
    "The lever table pairs a lever with the sweep's run only when the two train alike but for the lever's change."
    from dataclasses import asdict
    from omr_blog.config import make_config, same_config
    a = asdict(make_config('cpu-short', 'vit_small'))
    b = {**a, 'max_steps': 3000, 'out_dir': 'elsewhere'}
    assert not same_config(a, b) and same_config(a, b, ignore=('max_steps',))
    written_before_the_field = {k: v for k, v in a.items() if k != 'pixels'}
    assert same_config(written_before_the_field, a) and not same_config(written_before_the_field, {**a, 'pixels': 'ink'})

def test_a_checkpoint_of_older_training_code_is_not_resumed(tiny_dir, tmp_path, capsys):
    "restore: a checkpoint written before a change of what the config trains (TRAINING_REVISION) starts the run over."
    import torch
    cfg = _cfg(tiny_dir, tmp_path)
    train(cfg, progress=False, stop_after=3)                    # leaves the step-3 checkpoint
    state = tmp_path/'checkpoint'/'state.pt'
    st = torch.load(state, weights_only=False); st.pop('training_revision'); torch.save(st, state)   # as older code wrote it
    with open(tmp_path/'log.jsonl', 'a') as f: f.write('{"marker": "first run"}\n')   # a resumed run appends after it
    r = train(cfg, progress=False)
    assert 'older training code; starting over' in capsys.readouterr().err
    assert r['steps'] == 10 and 'marker' not in (tmp_path/'log.jsonl').read_text()   # a fresh log: the run started over

def test_in_lanes_keeps_order_and_an_interrupt_starts_nothing_more():
    "The sweep's and the pages' pool: results by item whatever finishes first; Ctrl-C cancels what has not started."
    import threading
    from omr_blog.sweep import in_lanes
    assert in_lanes(lambda x: (time.sleep(0.05 * (3 - x)), x * x)[1], [0, 1, 2], 2) == {0: 0, 1: 1, 2: 4}
    ran, gate = [], threading.Event()
    def fn(x):
        ran.append(x); gate.wait(5); return x
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # a shell's background job starts with SIGINT ignored
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()   # Ctrl-C reaches the main thread, waiting on the first item
        with pytest.raises(KeyboardInterrupt): in_lanes(fn, ['a', 'b', 'c', 'd'], 1)
    finally: signal.signal(signal.SIGINT, previous)
    gate.set(); time.sleep(0.2)
    assert ran == ['a']

def _pid_and_square(x: int) -> tuple[int, int]: return os.getpid(), x * x

def test_in_lanes_runs_in_spawned_processes_for_the_deep_dives():
    "The deep dives' pool is the same function with spawned processes: results by item, one callback each, not in this process."
    import multiprocessing as mp
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    from omr_blog.publish import _execute_deep_dive
    from omr_blog.sweep import in_lanes
    finished = []
    got = in_lanes(_pid_and_square, [3, 2, 1], 2, executor=partial(ProcessPoolExecutor, mp_context=mp.get_context('spawn')), done=finished.append)
    assert {x: sq for x, (_, sq) in got.items()} == {3: 9, 2: 4, 1: 1} and len(finished) == 3
    assert os.getpid() not in {pid for pid, _ in got.values()}
    job = partial(_execute_deep_dive, Path('runs/blog'))   # what execute_deep_dives sends its workers
    assert pickle.loads(pickle.dumps(job)).args == job.args
