"""How often `omr-blog transcribe`'s staff check (04a: `find_systems`, then `has_staff`) says "no staff found":
on music it should read (test strips engraved by Verovio, abcm2ps and LilyPond, clean and through the scan/photo
degradation of 01f) and on images with no music it should refuse (blank pages, noise, photos of a desk, pages of
text in four fonts at ten sizes, clean and degraded, ruled paper). Prints the share accepted per kind.

It builds its own small dataset (`omr-synth-staffcheck`: the cpu recipe's test pieces, 30% abcm2ps engraving so its
abcm2ps strips get the training layouts) and a LilyPond copy of the first `--lilypond` test strips (about a minute).

    .venv/bin/python benchmarks/staff_check.py [--strips 300] [--lilypond 100]
"""
import argparse, time
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from omr_blog.dataset import BuildConfig, build_dataset, build_heldout, load_omr_dataset
from omr_blog.degrade import DEGRADED_TEST_SEED, degrade
from omr_blog.transcribe import find_systems, has_staff, ruled_paper, text_page

def staff_found(im: Image.Image) -> bool: return bool(find_systems(im)) or has_staff(im)   # as transcribe_image decides

def music(strips: int, lilypond: int) -> dict[str, list[Image.Image]]:
    src = build_dataset(BuildConfig(name='omr-synth-staffcheck', train=100, val=30, test=strips, abcm2ps_share=0.3), progress=False)
    d = load_omr_dataset(src)
    kinds = {'Verovio': list(d['test']['image']), 'abcm2ps': list(d['test_abcm2ps']['image'])}
    if lilypond: kinds['LilyPond'] = list(load_omr_dataset(build_heldout(src, n=lilypond))['test']['image'])
    for k, (name, ims) in enumerate(list(kinds.items())):
        kinds[f'{name}, degraded'] = [degrade(im, (DEGRADED_TEST_SEED, k, i)) for i, im in enumerate(ims)]
    return kinds

def desk(seed: int) -> Image.Image:
    "A desk under a lamp: smooth light and dark, and a few objects."
    r = np.random.default_rng(100 + seed)
    im = Image.fromarray((r.random((4, 5)) * 255).astype(np.uint8)).resize((400, 300), Image.Resampling.BICUBIC)
    for _ in range(6):
        x, y = int(r.integers(0, 350)), int(r.integers(0, 250))
        ImageDraw.Draw(im).rectangle((x, y, x + int(r.integers(20, 200)), y + int(r.integers(10, 120))), fill=int(r.integers(0, 256)))
    return im

def no_music() -> dict[str, list[Image.Image]]:
    rng = np.random.default_rng(0)
    fonts = [ImageFont.load_default] + [lambda s, f=f: ImageFont.truetype(f, s) for f in ('DejaVuSans.ttf', 'DejaVuSerif.ttf', 'DejaVuSansMono.ttf')]
    text = [text_page(f(s), w, 'a page of text, not of music, line after line after line') for f in fonts for s in (8, 10, 12, 14, 16, 20, 24, 28, 36, 48) for w in (600, 1400)]
    return {'blank': [Image.new('L', (600, 120), 255), Image.new('L', (600, 120), 0), Image.new('RGB', (1, 1)), Image.new('L', (2000, 2800), 245)],
            'noise': [Image.fromarray(rng.integers(0, 256, (int(rng.integers(50, 400)), int(rng.integers(50, 600)), 3), dtype=np.uint8)) for _ in range(40)],
            'text': text, 'text, degraded': [degrade(im, (7, i)) for i, im in enumerate(text)],
            'ruled paper': [ruled_paper(s, t, (800, 400)) for s in (8, 12, 20, 30) for t in (1, 2)], 'desk': [desk(i) for i in range(20)]}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--strips', type=int, default=300, help='test strips per engraver')
    ap.add_argument('--lilypond', type=int, default=100, help='of which engraved by LilyPond too (0: none)')
    a = ap.parse_args()
    kinds, t = music(a.strips, a.lilypond), time.perf_counter()
    for name, ims in kinds.items(): print(f'music,    {name:20s} staff found on {np.mean([staff_found(im) for im in ims]):6.1%} of {len(ims)} (want 100%)')
    for name, ims in no_music().items(): print(f'no music, {name:20s} staff found on {sum(map(staff_found, ims)):3d} of {len(ims)} (want 0)')
    print(f'{time.perf_counter() - t:.0f} s for the checks')

if __name__ == '__main__': main()
