"""What Section 4 computes from the committed records."""
import json, shutil

from omr_blog import results as R
from omr_blog.core import results_dir

def test_trained_twice_pairs_runs_of_one_recipe_and_measures_the_move(tmp_path, monkeypatch):
    "A second run of the same recipe is paired and its move measured; a run whose config differs is left out."
    src = results_dir('cpu-short')
    for d in ('first', 'again'):
        shutil.copytree(src, tmp_path/d, ignore=shutil.ignore_patterns('logs', 'summary.json'))
    again = lambda n: tmp_path/'again'/f'{n}.json'
    rec = json.loads(again('resnet50').read_text()); rec['metrics']['test']['music_ser'] += 0.05; rec['threads'] = 7
    again('resnet50').write_text(json.dumps(rec))
    rec = json.loads(again('convnext_tiny').read_text()); rec['config']['lr'] *= 2
    again('convnext_tiny').write_text(json.dumps(rec))
    monkeypatch.setattr(R, 'results_dir', lambda *parts: tmp_path.joinpath(*parts))
    rows = {r['backbone']: r for r in R.rerun_table('first', 'again')}
    assert 'convnext_tiny' not in rows and 'resnet50' in rows and len(rows) == 6
    assert abs(rows['resnet50']['moved'] - 0.05) < 1e-9 and all(r['moved'] == 0 for n, r in rows.items() if n != 'resnet50')
    assert all(r['half_width'] > 0 for r in rows.values())
    assert R.rank_swaps(list(rows.values())) == []   # +0.05 leaves ResNet-50 first
    rows['resnet50']['rerun_ser'] += 1   # now last in the second run: ahead of every other before, behind after
    assert R.rank_swaps(list(rows.values())) == [('ResNet-50', r['title']) for r in sorted(rows.values(), key=lambda r: r['ser'])[1:]]
