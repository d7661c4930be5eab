"""The post as readers get it: the landing page and every section executed with papermill (tiny dataset), rendered
by `omr-blog render`, and every page opened in headless Chromium. A console error, a plotly figure that did not
draw, a broken image or a link to a missing page fails the test. Screenshots go to runs/site-screenshots/."""
import re
from pathlib import Path

import pytest

from omr_blog.core import project_root, runs_dir
from omr_blog.publish import check_site, chromium_path, execute_deep_dives, execute_sections, render_site, site_pages

pytestmark = pytest.mark.slow   # trains, runs papermill or a browser: not in make test-fast

CHROMIUM = chromium_path()
ROOT = project_root()
SECTIONS = ['nbs/index.ipynb'] + sorted(str(p.relative_to(ROOT)) for p in (ROOT/'nbs').glob('0[1-7]*.ipynb') if '"parameters"' in p.read_text())   # pages with papermill parameters

@pytest.fixture(scope='module')
def built(tmp_path_factory, tiny_dir):
    executed = tmp_path_factory.mktemp('executed')
    # what make blog does (omr-blog render --sections --deep-dives --lanes 2), on the tiny dataset
    execute_sections(tiny_dir, executed, lanes=2, progress=False, timeout=900, save_figures=False)
    assert sorted(f.name for f in executed.glob('*.ipynb')) == sorted(Path(s).name for s in SECTIONS)
    failed = [n for n, s in execute_deep_dives(executed, progress=False, lanes=2).items() if s is None]
    assert not failed, f'deep dives that failed to execute: {failed}'
    site = render_site(executed, tmp_path_factory.mktemp('site')/'_site')
    return site, executed

@pytest.fixture(scope='module')
def site(built): return built[0]

def test_executed_copies_are_valid_notebooks(built):
    "A reader may download an executed copy and open it in Jupyter: it must pass the notebook format's schema."
    import nbformat
    for f in built[1].glob('*.ipynb'): nbformat.validate(nbformat.read(f, as_version=4))

def test_code_is_highlighted(site):
    page = (site/'02b_model.html').read_text()
    assert '<pre class="highlight"><code>' in page and '<span class="k">def</span>' in page
    assert '.highlight .k' in (site/'assets'/'style.css').read_text()

def test_every_section_is_a_page_in_order(site):
    _, pages = site_pages()
    listed = [p.source for p in pages]
    assert [s for s in listed if s in SECTIONS] == SECTIONS          # landing page first, sections in numeric order
    for p in pages: assert (site/p.href).exists()
    links = {h for f in site.glob('*.html') for h in re.findall(r'href="([^"#:]+\.html)', f.read_text())}
    assert links <= {f.name for f in site.glob('*.html')}

def test_executed_pages_carry_their_outputs(site):
    html = (site/'04_results.html').read_text()
    assert 'not executed in this build' not in html and 'class="output-' in html
    metrics = (site/'03d_metrics.html').read_text()                  # a deep dive: executed too, its slow cells labelled
    assert 'not executed in this build' not in metrics and 'class="output-' in metrics
    assert 'its output is not shown' in (site/'03g_train.html').read_text()

def test_pages_stay_small_and_load_plotly_only_where_it_draws(site):
    sizes = {f.name: f.stat().st_size for f in site.glob('*.html')}
    assert max(sizes.values()) < 2 * 2**20, {k: v for k, v in sizes.items() if v >= 2 * 2**20}
    for f in site.glob('*.html'):
        t = f.read_text()
        assert ('<script src="assets/plotly.min.js">' in t) == ('<div class="plotly-figure"' in t), f.name   # (code on a page is escaped)

@pytest.mark.skipif(CHROMIUM is None, reason='Debian chromium is installed by make setup')
def test_pages_open_in_chromium_without_errors(site):
    problems = check_site(site, runs_dir()/'site-screenshots')
    assert not problems, '\n'.join(problems)

def test_the_check_catches_a_broken_page(tmp_path):
    (tmp_path/'index.html').write_text('<html><body><img src="missing.png"><script>undefined_function()</script></body></html>')
    problems = check_site(tmp_path)
    assert any('broken images' in p for p in problems) and any('undefined_function' in p for p in problems)

def test_the_check_catches_raw_tex(tmp_path):
    (tmp_path/'index.html').write_text(r'<html><body><p>LoRA adds $W + \frac{\alpha}{r}BA$ to a layer.</p></body></html>')
    assert any('raw TeX' in p for p in check_site(tmp_path))
