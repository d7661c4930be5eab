"""The notebooks where people run them: every section notebook opens with the same Colab install cell, and that
cell, run as Colab would run it (a fresh Python with only torch preinstalled), leaves a working project behind."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from omr_blog.core import project_root

ROOT = project_root()
SECTIONS = sorted((ROOT/'nbs').glob('0[1-7]_*.ipynb'))

def install_cell(nb: Path) -> str:
    cells = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    return next(c for c in cells if 'google.colab' in c)

def test_every_section_opens_with_the_same_install_cell_and_a_colab_link():
    cells = {nb.name: install_cell(nb) for nb in SECTIONS}
    assert len(cells) == 7 and len(set(cells.values())) == 1
    for nb in SECTIONS:
        assert f'colab.research.google.com/github/omr-blog/omr_blog/blob/main/nbs/{nb.name}' in nb.read_text()

@pytest.mark.slow
def test_the_install_cell_installs_the_project_in_a_fresh_environment(tmp_path):
    venv = tmp_path/'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=120)
    py = str(venv/'bin'/'python')
    torch = subprocess.run([py, '-m', 'pip', 'install', '-q', 'torch==2.13.0'], capture_output=True, text=True, timeout=900)   # Colab has torch
    assert torch.returncode == 0, torch.stderr[-2000:]
    (tmp_path/'cell.py').write_text(install_cell(SECTIONS[0]))
    run_as_colab = ("import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab'); "
                    "exec(compile(open(sys.argv[1]).read(), 'cell', 'exec')); "
                    "import os, omr_blog, papermill; print(omr_blog.__file__); print(os.getcwd())")
    env = {**os.environ, 'OMR_BLOG_HOME': str(tmp_path/'omr_blog'), 'OMR_BLOG_REPO': str(ROOT), 'PIP_CONSTRAINT': str(ROOT/'constraints.txt')}
    r = subprocess.run([py, '-c', run_as_colab, str(tmp_path/'cell.py')], capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    where, cwd = r.stdout.strip().splitlines()[-2:]
    assert where == str(tmp_path/'omr_blog'/'omr_blog'/'__init__.py') and cwd == str(tmp_path/'omr_blog'/'nbs')
