"""Render throughput of the data build: system images per second, in-process on one core and through the
crash-isolated pool on all cores, side by side in one run. Target (issue 2): >= 30 system images/s on 2 cores.

    .venv/bin/python benchmarks/render_throughput.py [--pieces 120]
"""
import argparse, os, time
from dataclasses import replace
from omr_blog.dataset import RECIPES, piece_records, select_pieces
from omr_blog.workers import isolated_map

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--pieces', type=int, default=80, help='training pieces rendered by each measurement (the same pieces for both)')
    ap.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)))
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

if __name__ == '__main__': main()
