import subprocess, sys
from pathlib import Path
BIN = Path(sys.executable).parent/'omr-blog'

def run(*args):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)

def test_help_explains_commands():
    r = run('--help'); assert r.returncode == 0 and 'data' in r.stdout
    r = run('data', '--help'); assert r.returncode == 0 and 'Resumable' in r.stdout and '--recipe' in r.stdout

def test_unknown_preset_and_missing_dataset_are_one_line_errors(tmp_path):
    r = run('data', '--preset', 'nope'); assert r.returncode == 2 and 'invalid choice' in r.stderr   # the old name of --recipe
    r = run('train', '--backbone', 'resnet50', '--preset', 'nope'); assert r.returncode == 2 and "'cpu-tiny'" in r.stderr   # presets listed
    r = run('info', str(tmp_path/'nothing'))
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert 'nothing' in r.stderr

def test_info_reports_the_tiny_dataset(tiny_dir):
    import json
    r = run('info', str(tiny_dir)); assert r.returncode == 0
    info = json.loads(r.stdout); assert info['sizes']['train'] == 400 and len(info['fingerprint']) == 64

def test_eval_refuses_a_staff_share_that_is_not_a_share(tmp_path):
    r = run('eval', '--checkpoint', str(tmp_path), '--staff-share', '1.5')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and '--staff-share' in r.stderr
