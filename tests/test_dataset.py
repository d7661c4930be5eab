import json, os, shutil, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
import pytest
from omr_blog.core import OmrBlogError
from omr_blog.dataset import (RECIPES, BuildConfig, build_dataset, build_report, dataset_fingerprint, load_omr_dataset,
                              load_pdmx_synth)

COLUMNS = ['image', 'transcription', 'filename', 'musicxml']

def test_tiny_has_pdmx_synth_columns_and_disjoint_pieces(tiny):
    assert {'train', 'val', 'test', 'test_abcm2ps'} <= set(tiny)
    for split in tiny.values(): assert split.column_names == COLUMNS
    piece = lambda f: f.rsplit('/system-', 1)[0]
    train = {piece(f) for f in tiny['train']['filename']}
    assert not train & {piece(f) for f in tiny['test']['filename']}
    assert not train & {piece(f) for f in tiny['val']['filename']}
    assert set(tiny['test_abcm2ps']['filename']) <= set(tiny['test']['filename'])

def test_labels_are_canonical(tiny):
    for t in tiny['train']['transcription'][:200]:
        assert t.startswith('X:1\n') and 'L:1/8' in t and 'T:<|text|>' in t
        assert '%' not in t.replace('%%', '')

def test_report_fingerprint_matches_contents(tiny_dir, tiny):
    rep = build_report(tiny_dir)
    assert rep['fingerprint'] == dataset_fingerprint(tiny)
    assert rep['sizes'] == {k: len(v) for k, v in tiny.items()}
    assert rep['provenance']['git']['commit'] is None or len(rep['provenance']['git']['commit']) == 40

SMALL = replace(RECIPES['tiny'], name='resume-test', train=60, val=8, test=8, shard_pieces=8)

def _fingerprint(out):
    return json.loads((Path(out)/'report.json').read_text())['fingerprint']

@pytest.mark.slow
def test_killed_build_resumes_to_the_same_dataset(tmp_path):
    a = build_dataset(SMALL, out=tmp_path/'a', progress=False)
    # start the same build in another process, SIGKILL it once it has finished a couple of shards, then resume
    code = (f'from omr_blog.dataset import build_dataset, RECIPES; from dataclasses import replace; '
            f'build_dataset(replace(RECIPES["tiny"], name="resume-test", train=60, val=8, test=8, shard_pieces=8), out={str(tmp_path/"b")!r}, progress=False)')
    p = subprocess.Popen([sys.executable, '-c', code], start_new_session=True)
    shards = tmp_path/'b'/'shards'
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if shards.exists() and len([d for d in shards.iterdir() if (d/'shard_stats.json').exists()]) >= 2: break
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (tmp_path/'b'/'report.json').exists(), 'the build finished before it could be killed'
    b = build_dataset(SMALL, out=tmp_path/'b', progress=False)
    assert _fingerprint(a) == _fingerprint(b)

def test_a_broken_piece_costs_one_piece(tmp_path):
    corpus = tmp_path/'corpus'/'mine'; corpus.mkdir(parents=True)
    good = ''.join(f'X:{i}\nT:t{i}\nM:4/4\nL:1/4\nK:G\n' + 'GABc|dcBA|' * 4 + '\n\n' for i in range(1, 40))
    (corpus/'good.abc').write_text(good + 'X:99\nT:broken\nK:\n(((((\n')
    (corpus/'broken.mxl').write_bytes(b'PK\x03\x04 not really a zip')
    cfg = BuildConfig(name='broken', train=10**6, val=10**6, test=10**6, shard_pieces=16, corpus_root=str(tmp_path/'corpus'), domain_shift=False, max_staves=99)
    out = build_dataset(cfg, out=tmp_path/'out', progress=False)
    rep = json.loads((out/'report.json').read_text())
    assert rep['engravers'] == {}   # Verovio only (domain_shift off, no other engraver drawn)
    assert sum(rep['sizes'].values()) > 0
    causes = {k.split(':', 1)[1] for k in rep['failures_by_cause']}
    assert {'unreadable_source', 'xml2abc_failed'} <= causes, rep['failures_by_cause']
    assert sum(v['pieces'] for v in rep['pieces'].values()) == 41

def test_missing_dataset_and_offline_hub_fail_fast_and_clearly(tmp_path):
    with pytest.raises(OmrBlogError, match='no dataset there'): load_omr_dataset(tmp_path/'nothing')
    t = time.time()
    with pytest.raises(OmrBlogError, match='omr-blog data'): load_pdmx_synth()
    assert time.time() - t < 30

def test_new_build_fields_at_defaults_keep_older_builds_valid_and_the_chord_preset_selects_its_collections():
    from omr_blog.dataset import _comparable, select_pieces
    plain = _comparable(RECIPES['cpu'])
    assert not {'min_staves', 'collections', 'chord_parts'} & set(plain)   # as builds before these fields recorded it
    chords = _comparable(RECIPES['chords'])
    assert chords['chord_parts'] == 2 and chords['collections'] == ['bach/', 'palestrina/']
    refs = [r for split in select_pieces(RECIPES['chords']).values() for r in split]
    assert refs and all(r.piece_id.startswith(('bach/', 'palestrina/')) and 4 <= r.staves_hint <= 6 for r in refs)

def test_two_bar_recipe_cuts_every_system_into_two_bars_and_labels_match_images():
    "cpu-short's strips hold two bars (plus a pickup at most); as many labels as engraved strips; the field keeps old builds valid."
    import io
    from PIL import Image
    from omr_blog.dataset import _comparable, piece_records, select_pieces
    assert 'bars_per_system' not in _comparable(RECIPES['cpu']) and _comparable(RECIPES['cpu-short'])['bars_per_system'] == 2
    short, five = RECIPES['cpu-short'], replace(RECIPES['cpu-short'], bars_per_system=5, max_systems_per_piece=99)
    ref = next(r for r in select_pieces(short)['test'][:20] if 'failed' not in piece_records(r, 'test', five))
    a, b = piece_records(ref, 'test', replace(short, max_systems_per_piece=99, domain_shift=False)), piece_records(ref, 'test', five)
    assert len(a['records']) > len(b['records'])
    for rec in a['records']:
        music = rec['transcription'].split('\n')[-1]
        assert music.count('|') <= 3, music                                    # two bar lines, one more after a pickup
        assert Image.open(io.BytesIO(rec['image'])).size[0] < 2000
    assert len(piece_records(ref, 'test', short)['records']) <= short.max_systems_per_piece

def test_heldout_engraver_errors_are_one_line(monkeypatch, tmp_path):
    "No LilyPond, or an unknown engraver: a clear OmrBlogError before anything is written."
    import omr_blog.dataset as ds
    with pytest.raises(OmrBlogError, match='unknown held-out engraver'): ds.build_heldout('omr-synth-tiny', 'musescore')
    monkeypatch.setattr(ds, 'have_lilypond', lambda: False)
    with pytest.raises(OmrBlogError, match='LilyPond is not installed'): ds.build_heldout(tmp_path/'nothing-here')
    assert not any(tmp_path.iterdir())

def test_heldout_counts_what_lilypond_cannot_engrave(monkeypatch, tmp_path):
    "A system that fails to engrave is left out and counted; one that kills its LilyPond batch costs only itself."
    import shutil
    import omr_blog.dataset as ds
    src = tmp_path/'omr-synth-tiny'
    tiny = ds.resolve_dataset_dir('omr-synth-tiny', fallback_tiny=True)
    shutil.copytree(tiny/'hf', src/'hf'); shutil.copy(tiny/'report.json', src)
    from PIL import Image
    test = ds.load_omr_dataset(src)['test']
    bad, deadly = test[1]['musicxml'], test[4]['musicxml']
    assert len(set(test['musicxml'][:6])) == 6
    def fake(musicxmls):
        if deadly in musicxmls: os._exit(1)   # LilyPond dying takes its whole batch with it
        return [ValueError('lilypond failed: syntax error') if x == bad else Image.new('L', (60, 20), 255) for x in musicxmls]
    monkeypatch.setattr(ds, 'have_lilypond', lambda: True)
    monkeypatch.setattr(ds, 'render_musicxml_lilypond_many', fake)
    monkeypatch.setattr(ds, 'LILYPOND_BATCH', 3)
    held = ds.build_heldout(src, n=6, workers=1, progress=False)
    h = ds.load_omr_dataset(held)['test']
    assert h['filename'] == [test[i]['filename'] for i in (0, 2, 3, 5)] and h['transcription'] == [test[i]['transcription'] for i in (0, 2, 3, 5)]
    assert ds.build_report(held)['failures_by_cause'] == {'test:ValueError': 1, 'test:crash': 1}
    assert set(ds.build_report(held)['engravers']) == {'lilypond'}   # the program that drew it, whatever its version

def test_a_build_records_the_version_of_each_engraver_program_it_called(monkeypatch):
    from omr_blog import render
    from omr_blog.dataset import _engravers_used
    assert _engravers_used(RECIPES['cpu-engravers-musescore']) == ('abcm2ps', 'musescore')
    assert _engravers_used(RECIPES['cpu']) == ('abcm2ps',)                        # its test_abcm2ps split
    assert _engravers_used(replace(RECIPES['cpu'], domain_shift=False)) == ()     # Verovio alone: a library, versioned with the others
    monkeypatch.setitem(render.ENGRAVER_PROGRAMS, 'abcm2ps', [sys.executable, '-c', 'import sys; print("banner"); print("fake-abc 8.1.2", file=sys.stderr)'])
    monkeypatch.setitem(render.ENGRAVER_PROGRAMS, 'musescore', ['no-such-engraver-program', '-v'])
    assert render.engraver_versions(('abcm2ps', 'musescore')) == {'abcm2ps': 'fake-abc 8.1.2', 'musescore': None}

@pytest.mark.skipif(shutil.which('abcm2ps') is None, reason='abcm2ps is installed by make setup')
def test_page_dataset_trains_on_abcm2ps_and_musescore_pages_of_verovio_size_with_the_same_labels():
    "pages: shares of the training pages laid out by abcm2ps and MuseScore (same size as Verovio's page, same label); test pages stay Verovio's."
    from omr_blog.dataset import piece_records, select_pieces
    from PIL import Image
    import io
    assert RECIPES['pages'].abcm2ps_share == 0.3 and RECIPES['pages'].musescore_share == 0.3
    plain = replace(RECIPES['pages'], abcm2ps_share=0.0, musescore_share=0.0)
    others = [replace(plain, abcm2ps_share=1.0)] + ([replace(plain, musescore_share=1.0)] if shutil.which('mscore3') else [])
    refs = [r for r in select_pieces(plain)['train'] if r.staves_hint == 1][:3]
    a = [r for ref in refs for r in piece_records(ref, 'train', plain).get('records', [])]
    size = lambda r: Image.open(io.BytesIO(r['image'])).size
    t = next(r for r in select_pieces(plain)['test'] if r.staves_hint == 1)
    for mixed in others:   # abcm2ps's pages, then MuseScore's: each a page of Verovio's size with Verovio's label
        b = [r for ref in refs for r in piece_records(ref, 'train', mixed).get('records', [])]
        assert len(a) >= 2 and [r['transcription'] for r in a] == [r['transcription'] for r in b]
        assert all(x['image'] != y['image'] and size(x) == size(y) for x, y in zip(a, b))
        assert piece_records(t, 'test', plain)['records'] == piece_records(t, 'test', mixed)['records']

@pytest.mark.skipif(shutil.which('lilypond') is None, reason='LilyPond is installed by make setup')
def test_one_lilypond_process_engraves_a_batch_as_separate_calls_would(tiny, monkeypatch):
    """A batch gives each excerpt the image a call of its own gives, and a bad excerpt its own error: one musicxml2ly
    cannot read, and one whose LilyPond source is broken (LilyPond goes on with the next file)."""
    import omr_blog.render as render
    good = tiny['test']['musicxml'][:3]
    singles = [render.render_musicxml_lilypond(x).tobytes() for x in good]
    source = render._lilypond_source
    def broken_second(musicxml, ly, timeout):
        source(musicxml, ly, timeout)
        if musicxml == good[1]: ly.write_text('{ c4 d e f\n')   # an unclosed brace: a LilyPond syntax error
    monkeypatch.setattr(render, '_lilypond_source', broken_second)
    batch = render.render_musicxml_lilypond_many([good[0], '<not-musicxml/>', good[1], good[2]])
    assert isinstance(batch[1], ValueError) and 'musicxml2ly' in str(batch[1])
    assert isinstance(batch[2], ValueError) and 'lilypond failed' in str(batch[2])
    assert [batch[0].tobytes(), batch[3].tobytes()] == [singles[0], singles[2]]

@pytest.mark.skipif(shutil.which('abcm2ps') is None, reason='abcm2ps is installed by make setup')
def test_engraver_mix_changes_training_strips_only_and_keeps_labels():
    "cpu-engravers: some training strips come from abcm2ps (seeded), labels unchanged; test strips stay Verovio's."
    from omr_blog.dataset import _comparable, piece_records, select_pieces
    assert 'abcm2ps_share' not in _comparable(RECIPES['cpu']) and _comparable(RECIPES['cpu-engravers'])['abcm2ps_share'] == 0.3
    plain, mixed = replace(RECIPES['cpu'], domain_shift=False), replace(RECIPES['cpu-engravers'], abcm2ps_share=0.5, domain_shift=False)
    refs = select_pieces(plain)['train'][:6]
    a = [r for ref in refs for r in piece_records(ref, 'train', plain).get('records', [])]
    b = [r for ref in refs for r in piece_records(ref, 'train', mixed).get('records', [])]
    assert [r['transcription'] for r in a] == [r['transcription'] for r in b] and [r['filename'] for r in a] == [r['filename'] for r in b]
    changed = sum(x['image'] != y['image'] for x, y in zip(a, b))
    assert 0 < changed < len(a)                                        # about half, drawn per strip
    assert b == [r for ref in refs for r in piece_records(ref, 'train', mixed).get('records', [])]   # reproducible
    t = select_pieces(plain)['test'][0]
    assert piece_records(t, "test", plain)["records"] == piece_records(t, "test", mixed)["records"]   # Verovio test strips unchanged

def test_ragged_share_narrows_some_training_strips_only_and_keeps_labels(tmp_path):
    "cpu-engravers-ragged: a seeded half of the training pieces set unjustified (narrower strips), labels and test strips unchanged."
    import io, random
    from PIL import Image
    from omr_blog.dataset import _comparable, piece_records, select_pieces
    assert 'ragged_share' not in _comparable(RECIPES['cpu-engravers']) and _comparable(RECIPES['cpu-engravers-ragged'])['ragged_share'] == 0.5
    plain = replace(RECIPES['cpu'], domain_shift=False)
    loose = replace(plain, ragged_share=0.5)
    refs = select_pieces(plain)['train'][:8]
    a = [piece_records(ref, 'train', plain).get('records', []) for ref in refs]
    b = [piece_records(ref, 'train', loose).get('records', []) for ref in refs]
    assert [[r['transcription'] for r in p] for p in a] == [[r['transcription'] for r in p] for p in b]
    width = lambda r: Image.open(io.BytesIO(r['image'])).width
    same = [all(x['image'] == y['image'] for x, y in zip(p, q)) for p, q in zip(a, b)]
    drawn = [random.Random(f'{loose.seed}:ragged:{ref.piece_id}').random() < loose.ragged_share for ref in refs]
    assert 0 < sum(drawn) < len(refs) and [not s for s in same] == drawn   # exactly the drawn pieces changed: no layout leaks on
    for p, q, kept in zip(a, b, same):                                 # a changed piece: every strip narrower
        if not kept: assert all(width(y) < width(x) for x, y in zip(p, q))
    t = select_pieces(plain)['test'][0]
    assert piece_records(t, 'test', plain)['records'] == piece_records(t, 'test', loose)['records']   # test strips unchanged
    with pytest.raises(OmrBlogError, match='system strips only'):
        build_dataset(replace(RECIPES['pages'], ragged_share=0.5), out=tmp_path, progress=False)

@pytest.mark.skipif(shutil.which('abcm2ps') is None, reason='abcm2ps is installed by make setup')
def test_an_abcm2ps_that_hangs_costs_its_strip_not_the_piece(monkeypatch):
    "abcm2ps past its time limit is a bad input (ValueError), like a syntax error: the training strip stays Verovio's."
    from omr_blog import render
    from omr_blog.dataset import piece_records, select_pieces
    plain, mixed = replace(RECIPES['cpu'], domain_shift=False), replace(RECIPES['cpu-engravers'], abcm2ps_share=1.0, domain_shift=False)
    ref = select_pieces(plain)['train'][0]
    run = subprocess.run
    def hangs(cmd, *a, **k):
        if cmd[0] == 'abcm2ps': raise subprocess.TimeoutExpired(cmd, k.get('timeout'))
        return run(cmd, *a, **k)
    monkeypatch.setattr(render.subprocess, 'run', hangs)
    with pytest.raises(ValueError, match='abcm2ps took over 20 s'): render.render_abc_abcm2ps('X:1\nK:C\nCDEF|\n')
    assert piece_records(ref, 'train', mixed)['records'] == piece_records(ref, 'train', plain)['records']

def _first_converted(refs, split, cfg, n):
    from omr_blog.dataset import piece_records
    return [ref for ref in refs if 'records' in piece_records(ref, split, cfg)][:n]

@pytest.mark.skipif(shutil.which('mscore3') is None, reason='MuseScore 3 is installed by make setup')
def test_musescore_share_engraves_the_drawn_training_pieces_only_each_strip_from_its_own_excerpt():
    """cpu-engravers-musescore: a seeded share of the training pieces engraved by MuseScore; each MuseScore strip is its
    own excerpt's engraving (not a neighbour's), the other strips and pieces are cpu-engravers' bytes, test strips unchanged."""
    import io, random
    import numpy as np
    from PIL import Image
    from omr_blog.dataset import _comparable, piece_records, select_pieces
    from omr_blog.render import render_excerpts_musescore, sample_musescore_style, sample_style
    assert 'musescore_share' not in _comparable(RECIPES['cpu-engravers']) and _comparable(RECIPES['cpu-engravers-musescore'])['musescore_share'] == 0.3
    base = replace(RECIPES['cpu-engravers'], domain_shift=False)
    mixed = replace(RECIPES['cpu-engravers-musescore'], domain_shift=False, musescore_share=0.5)
    refs = _first_converted(select_pieces(base)['train'][:12], 'train', base, 8)
    a = [piece_records(ref, 'train', base) for ref in refs]
    b = [piece_records(ref, 'train', mixed) for ref in refs]
    assert [[r['filename'] for r in p['records']] for p in a] == [[r['filename'] for r in p['records']] for p in b]
    drawn = [random.Random(f'{mixed.seed}:musescore:{ref.piece_id}').random() < mixed.musescore_share for ref in refs]
    assert 0 < sum(drawn) < len(refs)
    pixels = lambda png: np.asarray(Image.open(io.BytesIO(png)) if isinstance(png, bytes) else png)
    for ref, p, q, d in zip(refs, a, b, drawn):
        assert sum(q['engraved'].values()) == len(q['records'])
        if not d: assert q['records'] == p['records'] and not q['engraved']['musescore']; continue
        key = f'{mixed.seed}:{ref.piece_id}'
        for x, y in zip(p['records'], q['records']):
            assert x['transcription'] == y['transcription'] and x['musicxml'] == y['musicxml']
            if x['image'] == y['image']: continue                      # a strip MuseScore refused: cpu-engravers' strip
            alone = render_excerpts_musescore([y['musicxml']], sample_musescore_style(key), sample_style(key).background)[0]
            assert np.array_equal(pixels(y['image']), pixels(alone))   # this strip's own excerpt, engraved alone
        assert sum(x['image'] != y['image'] for x, y in zip(p['records'], q['records'])) == q['engraved']['musescore']
    assert sum(q['engraved']['musescore'] for q in b) > 0
    for split in ('val', 'test'):                                      # only training strips change
        t, = _first_converted(select_pieces(base)[split][:5], split, base, 1)
        assert piece_records(t, split, base)['records'] == piece_records(t, split, mixed)['records']

def test_musescore_errors_are_one_line_and_a_failing_musescore_costs_its_strips_not_the_piece(monkeypatch, tmp_path):
    from omr_blog import dataset as ds, render
    from omr_blog.dataset import piece_records, select_pieces
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">' + ''.join(
        f'<polyline class="StaffLines" stroke="#000000" points="0,{y} 100,{y}"/>' for y in range(10, 90, 8)) + '</svg>'
    with pytest.raises(ValueError, match='MuseScore drew 10 staff lines, not one staff'):
        render._musescore_strip(svg, render.MuseScoreStyle(), 255, 12, 0.6)
    monkeypatch.setattr(render, 'have_musescore', lambda: True)
    run = subprocess.run
    def fails(cmd, *a, **k):
        if cmd[0] == 'mscore3': return subprocess.CompletedProcess(cmd, 1, b'', b'cannot start')
        return run(cmd, *a, **k)
    monkeypatch.setattr(render.subprocess, 'run', fails)
    errors = render.render_excerpts_musescore(['<score-partwise/>'] * 2, render.MuseScoreStyle())
    assert [str(e) for e in errors] == [f'MuseScore drew 0 pages for excerpt {i} (MuseScore exit code 1: cannot start)' for i in range(2)]
    plain = replace(RECIPES['cpu'], domain_shift=False)
    ref, = _first_converted(select_pieces(plain)['train'][:5], 'train', plain, 1)
    res = piece_records(ref, 'train', replace(plain, musescore_share=1.0))
    assert res['records'] == piece_records(ref, 'train', plain)['records'] and res['musescore_refused'] == len(res['records'])
    def hangs(cmd, *a, **k): raise subprocess.TimeoutExpired(cmd, k.get('timeout'))
    monkeypatch.setattr(render.subprocess, 'run', hangs)
    with pytest.raises(ValueError, match='MuseScore took over 60 s'): render.render_excerpts_musescore(['<score-partwise/>'], render.MuseScoreStyle())
    monkeypatch.setattr(render, 'have_musescore', lambda: False)
    monkeypatch.setattr(ds, 'have_musescore', lambda: False)
    with pytest.raises(OmrBlogError, match='MuseScore 3 is not installed'): render.render_excerpts_musescore(['<score-partwise/>'], render.MuseScoreStyle())
    with pytest.raises(OmrBlogError, match='MuseScore 3 is not installed'):
        build_dataset(replace(RECIPES['tiny'], musescore_share=0.5, domain_shift=False), out=tmp_path, progress=False)

@pytest.mark.skipif(shutil.which('lilypond') is None, reason='LilyPond is installed by make setup')
def test_lilypond_keeps_five_dense_bars_on_one_staff():
    "The held-out strips are one system each, like every training strip, however much music the five bars hold."
    from omr_blog.batching import staff_lines
    from omr_blog.corpus import abc_to_musicxml
    from omr_blog.render import render_musicxml_lilypond
    dense = 'X:1\nL:1/16\nM:4/4\nK:C\n' + ' | '.join(['cdef gabc\' c\'bag fedc'] * 5) + ' |\n'   # 80 sixteenths
    assert staff_lines(render_musicxml_lilypond(abc_to_musicxml(dense))) is not None   # five lines, not ten
