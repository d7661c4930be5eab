"""The cluster path as a cluster would take it: the launcher submits one array of seven tasks, and one array task
(the sbatch script run by hand, as SLURM would) trains its backbone through papermill on the tiny dataset."""
import json, os, stat, subprocess, sys
from pathlib import Path

import pytest

from omr_blog.core import project_root

ROOT = project_root()

def test_launcher_submits_one_array_of_the_seven_backbones(tmp_path):
    fake = tmp_path/'bin'; fake.mkdir()
    (fake/'sbatch').write_text('#!/bin/sh\necho "$@" > "$SBATCH_ARGS"\n'); (fake/'sbatch').chmod(stat.S_IRWXU)
    env = {**os.environ, 'PATH': f'{fake}:{os.environ["PATH"]}', 'SBATCH_ARGS': str(tmp_path/'args')}
    r = subprocess.run(['bash', 'slurm/launch_sweep.sh', '--partition=gpu'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'args').read_text().split() == ['--array=0-6', '--export=ALL', '--partition=gpu', 'slurm/train_backbone.sbatch']

@pytest.mark.slow
def test_one_array_task_trains_its_backbone_with_papermill(tiny_dir, tmp_path):
    out = tmp_path/'task'
    overrides = dict(dataset=str(tiny_dir), max_steps=2, batch_size=2, effective_batch=2, eval_samples=2, omr_ned_samples=0,
                     wandb=False, decoder={'max_len': 32})
    env = {**os.environ, 'SLURM_ARRAY_TASK_ID': '3', 'SLURM_SUBMIT_DIR': str(ROOT), 'PRESET': 'cpu-tiny',
           'OVERRIDES': json.dumps(overrides), 'OUT': str(out), 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}'}
    r = subprocess.run(['bash', 'slurm/train_backbone.sbatch'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((out/'result.json').read_text())
    assert rec['status'] == 'ok' and rec['backbone'] == 'vit_small' and rec['steps'] == 2   # task 3 of the registry's order
    assert (out/'train_backbone.ipynb').exists()
