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

def test_a_lever_is_paired_with_the_sweep_recipe_on_as_many_threads(tmp_path, monkeypatch):
    "The thread count alone moves a tiny model's numbers: a lever run is compared with the same recipe on its own thread count."
    from omr_blog import levers as L
    rec = json.loads((results_dir('cpu-short')/'resnet50.json').read_text())
    for d, threads in (('cpu-short', 1), ('cpu-short-rerun', 2)):
        (tmp_path/d).mkdir(); (tmp_path/d/'resnet50.json').write_text(json.dumps({**rec, 'threads': threads}))
    monkeypatch.setattr(L, 'results_dir', lambda *parts: tmp_path.joinpath(*parts))
    lever = {**rec, 'config': {**rec['config'], 'memory_norm': 'instance'}}
    change = {'backbone': 'resnet50', 'preset': 'cpu-short', 'memory_norm': 'instance'}
    assert L.sweep_partner({**lever, 'threads': 2}, change, 'cpu-short') == 'cpu-short-rerun'
    assert L.sweep_partner({**lever, 'threads': 1}, change, 'cpu-short') == 'cpu-short'
    assert L.sweep_partner({**lever, 'threads': 4}, change, 'cpu-short') in ('cpu-short', 'cpu-short-rerun')   # none alike in threads: still paired
    assert L.sweep_partner({**lever, 'threads': 2}, {'backbone': 'resnet50'}, 'cpu-short') is None   # a change the lever does not declare
