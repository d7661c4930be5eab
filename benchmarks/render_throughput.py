"""Render throughput of the data build: system images per second, in-process on one core and through the
crash-isolated pool on all cores, side by side in one run. Target (issue 2): >= 30 system images/s on 2 cores.
Then the cost of one system image by each engraver, on one core, on the same test systems: Verovio (the strips),
abcm2ps and MuseScore (training layouts) and LilyPond (the held-out split), one call per system and one call per batch.

    .venv/bin/python benchmarks/render_throughput.py [--pieces 120] [--systems 40] [--lilypond 10]
"""
import argparse, os, time
from dataclasses import replace
from omr_blog.dataset import RECIPES, piece_records, select_pieces
from omr_blog.workers import isolated_map

def engraver_costs(n_systems: int, n_lilypond: int):
    "Milliseconds per system image by each engraver, one core, the same test systems."
    from omr_blog.corpus import ConversionError, convert_piece, system_label
    from omr_blog.dataset import musicxml_excerpts
    from omr_blog.render import (have_musescore, render_abc_abcm2ps, render_excerpts_musescore, render_musicxml_lilypond,
                                 render_musicxml_lilypond_many, render_systems, sample_abcm2ps_style, sample_musescore_style, sample_style)
    pieces = []
    for ref in select_pieces(RECIPES['cpu'])['test']:
        try: pieces.append(convert_piece(ref))
        except ConversionError: continue
        if sum(p.layout.n_systems for p in pieces) >= n_systems: break
    render_systems(pieces[0].musicxml, sample_style(0))   # warm-up: Verovio's fonts
    t = time.perf_counter(); n = sum(len(render_systems(p.musicxml, sample_style(p.ref.piece_id))) for p in pieces)
    print(f'Verovio  : {1e3 * (time.perf_counter() - t) / n:7.1f} ms per system image ({n} systems, whole pieces)')
    labels = [system_label(p.raw_layout, i) for p in pieces for i in range(p.layout.n_systems)]
    t = time.perf_counter()
    for i, abc in enumerate(labels): render_abc_abcm2ps(abc, style=sample_abcm2ps_style(i), vmargin=0.6)
    print(f'abcm2ps  : {1e3 * (time.perf_counter() - t) / len(labels):7.1f} ms per system image ({len(labels)} systems)')
    if have_musescore():   # one process per piece, as the data build calls it
        t = time.perf_counter(); ims = [im for p in pieces for im in render_excerpts_musescore(musicxml_excerpts(p.musicxml, 5), sample_musescore_style(p.ref.piece_id))]
        bad = sum(isinstance(im, ValueError) for im in ims)
        print(f'MuseScore: {1e3 * (time.perf_counter() - t) / len(ims):7.1f} ms per system image ({len(ims)} systems, a process per piece; {bad} refused)')
    if not n_lilypond: return
    xmls = [x for p in pieces for x in musicxml_excerpts(p.musicxml, 5)][:n_lilypond]
    t = time.perf_counter(); single = [render_musicxml_lilypond(x) for x in xmls]; one = (time.perf_counter() - t) / len(xmls)
    t = time.perf_counter(); batch = render_musicxml_lilypond_many(xmls); many = (time.perf_counter() - t) / len(xmls)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(single, batch))   # the same images either way
    print(f'LilyPond : {1e3 * one:7.1f} ms per system image, a process each; {1e3 * many:7.1f} ms in one process for {len(xmls)}: '
          f'{one / many:.1f}x')

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--pieces', type=int, default=80, help='training pieces rendered by each measurement (the same pieces for both)')
    ap.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument('--systems', type=int, default=40, help='test systems engraved by Verovio and abcm2ps for the per-image cost')
    ap.add_argument('--lilypond', type=int, default=10, help='of which engraved by LilyPond, alone and as one batch (0: skip)')
    a = ap.parse_args()
    cfg = replace(RECIPES['cpu'], workers=a.workers)
    refs = select_pieces(cfg)['train'][:a.pieces]
    piece_records(refs[-1], 'train', cfg)   # warm-up: imports, Verovio's font loading (the pool's workers inherit it)

    t = time.perf_counter(); n1 = sum(len(piece_records(r, 'train', cfg).get('records', [])) for r in refs)
    one = n1 / (time.perf_counter() - t)
    t = time.perf_counter(); n2 = 0
    for res in isolated_map(lambda r: piece_records(r, 'train', cfg), refs, workers=a.workers, timeout=cfg.timeout):
        if res.ok: n2 += len(res.value.get('records', []))
    pool = n2 / (time.perf_counter() - t)
    print(f'one core, in-process : {one:6.1f} system images/s ({n1} images)')
    print(f'{a.workers} workers, isolated : {pool:6.1f} system images/s ({n2} images)')
    print(f'parallel speed-up    : {pool / one:.2f}x on {a.workers} workers')
    print(f'vs target 30 img/s   : {pool / 30:.2f}x  ({"meets" if pool >= 30 else "misses"} the target)')
    engraver_costs(a.systems, a.lilypond)

if __name__ == '__main__': main()
