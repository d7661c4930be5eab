"""What the staff fit (01e `find_staff`, `fit_staff`) meets in the data: how much of each strip's height its staff
takes, per engraver, and how often the five lines are found at all; the same on the scanned and photographed copies of
the test strips; and what the fit does to width bucketing. Writes `results/data/staff-fit.json`, which Section 4 reads.

- shares: the staff's height (top line to bottom line) over the strip's height, per split, where the fit finds the lines
  (`find_staff`: the exact finder, then the scan finder), and how often the exact finder alone finds them.
- degraded: the degraded test split degrades the plain strip at the model's height and then fits the copy (03e
  `predict`, 01e `OmrDataset(fit_after_transform=True)`), as `omr-blog transcribe` fits whatever scan it gets. How often the fit
  finds the five lines in those copies, and in copies made with the same draws at the engraving's own resolution, and
  how far the share it measures there is from the clean strip's.
- bucketing: the fit crops or pads the height, so it changes each strip's width at the model's height; the sampler
  therefore sorts fitted strips by their fitted widths (01e `OmrDataset.fitted_widths`). Padding share of batches sorted
  by the header widths (as before that), against batches sorted by the fitted widths.

    .venv/bin/python benchmarks/staff_fit.py [--train 2000] [--share 0.265]
"""
import argparse, statistics, time
from dataclasses import replace
from omr_blog.batching import ImageSpec, WidthBucketSampler, find_staff, model_view, padded_share, resize_to_height, scaled_width, staff_lines, to_rgb
from omr_blog.config import load_preset
from omr_blog.core import fmt, provenance, results_dir, write_json
from omr_blog.dataset import dataset_record, load_omr_dataset, resolve_dataset_dir
from omr_blog.degrade import DEGRADED_TEST_SEED, DegradeConfig, degrade
from tqdm.auto import tqdm

ENGRAVED, HELDOUT = 'omr-synth-cpu-engravers', 'omr-synth-cpu-lilypond'

def share(im) -> tuple[float | None, bool]:
    "The staff's share of the height as the fit finds it (`find_staff`), and whether the exact finder alone found it."
    rows = find_staff(im)
    return (None if rows is None else float((rows[-1] - rows[0]) / im.height)), staff_lines(im) is not None

def summary(measured: list) -> dict:
    shares = [s for s, _ in measured]
    found = [s for s in shares if s is not None]
    q = statistics.quantiles(found, n=4) if len(found) > 1 else [None] * 3
    return {'n': len(shares), 'found': len(found), 'found_share': len(found) / max(1, len(shares)),
            'found_exact': sum(exact for _, exact in measured), 'median': q[1], 'q1': q[0], 'q3': q[2]}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--train', type=int, default=2000, help='training strips measured (the first N)')
    ap.add_argument('--share', type=float, default=load_preset('cpu-long-engravers-staff')['staff_share'],
                    help="the staff share fitted to (default: the shipped preset's)")
    ap.add_argument('--height', type=int, default=64, help="the model's image height")
    a = ap.parse_args()
    t0, prov = time.perf_counter(), provenance()   # provenance first: the state of the tree this run measured
    data, held = load_omr_dataset(resolve_dataset_dir(ENGRAVED)), load_omr_dataset(resolve_dataset_dir(HELDOUT))
    splits = {'train': data['train'].select(range(min(a.train, len(data['train'])))), 'val': data['val'], 'test (Verovio)': data['test'],
              'abcm2ps': data['test_abcm2ps'], 'LilyPond (held out)': held['test']}
    images = {k: [to_rgb(im) for im in tqdm(s['image'], desc=f'reading {k}', leave=False)] for k, s in splits.items()}
    shares = {k: summary([share(im) for im in tqdm(ims, desc=f'staff of {k}', leave=False)]) for k, ims in images.items()}
    for k, s in shares.items():
        print(f'{k:22s} staff found on {s["found"]:5d} of {s["n"]:5d} ({s["found_exact"]} by the exact finder); share of the height median {fmt(s["median"])} (quartiles {fmt(s["q1"])}-{fmt(s["q3"])})')

    spec, cfg = ImageSpec(height=a.height), DegradeConfig()
    clean = [share(im)[0] for im in images['test (Verovio)']]
    at_model = [share(degrade(resize_to_height(im, spec), (DEGRADED_TEST_SEED, 0, i), cfg)) for i, im in enumerate(tqdm(images['test (Verovio)'], desc='degraded at the model height', leave=False))]
    at_source = [share(degrade(im, (DEGRADED_TEST_SEED, 0, i), cfg)) for i, im in enumerate(tqdm(images['test (Verovio)'], desc='degraded at full resolution', leave=False))]
    def off(deg): return [abs(d - c) / c for (d, _), c in zip(deg, clean) if d is not None and c is not None]
    degraded = {}
    for name, deg in (('at the model height', at_model), ('at the engraving resolution', at_source)):
        e = off(deg)
        degraded[name] = {**summary(deg), 'share_error_median': statistics.median(e) if e else None,
                          'share_error_over_10pct': sum(x > 0.1 for x in e)}
        print(f'degraded {name:28s} staff found on {degraded[name]["found"]} of {len(deg)} ({degraded[name]["found_exact"]} by the exact finder; clean: {sum(c is not None for c in clean)}); '
              f'share off the clean one by median {fmt(degraded[name]["share_error_median"], ".1%")}, by >10% on {degraded[name]["share_error_over_10pct"]}')

    ims = images['train']   # bucketing: the header's width (what the sampler sorts by) against the fitted width
    est = [scaled_width(im.width, im.height, spec) for im in ims]
    true = [model_view(im, replace(spec, staff_share=a.share)).width for im in tqdm(ims, desc='fitted widths', leave=False)]   # as fitted_widths
    bucketing = {}
    for bs in (8, 32):
        by_est, by_true = (WidthBucketSampler(w, bs, seed=0).batches() for w in (est, true))
        bucketing[f'batch {bs}'] = {'sorted by header width': padded_share(true, by_est), 'sorted by fitted width': padded_share(true, by_true)}
        print(f'bucketing, batch {bs}: padding {bucketing[f"batch {bs}"]["sorted by header width"]:.1%} of the pixels sorted by header widths, '
              f'{bucketing[f"batch {bs}"]["sorted by fitted width"]:.1%} sorted by the fitted widths')
    ratio = statistics.median(t / e for t, e in zip(true, est))
    print(f'fitted width / header width: median {ratio:.2f}; {time.perf_counter() - t0:.0f} s')
    write_json(results_dir()/'data'/'staff-fit.json', {
        'share': a.share, 'height': a.height, 'splits': shares, 'degraded_test': degraded, 'bucketing': bucketing,
        'fitted_over_header_width_median': ratio,
        'datasets': {n: dataset_record(n, resolve_dataset_dir(n)) for n in (ENGRAVED, HELDOUT)}, 'provenance': prov})

if __name__ == '__main__': main()
