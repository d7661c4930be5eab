import random
import numpy as np
import pytest, torch
from PIL import Image
from omr_blog.batching import (Collate, ImageSpec, OmrDataset, WidthBucketSampler, image_to_tensor, open_image,
                               pad_images, padded_share, to_rgb)
from omr_blog.core import OmrBlogError

def _modes():
    base = Image.new('RGB', (40, 10), (10, 20, 30))
    yield 'L', base.convert('L')
    yield 'LA', base.convert('LA')
    yield 'P', base.convert('P')
    yield 'RGBA', base.convert('RGBA')
    yield 'CMYK', base.convert('CMYK')
    yield 'I;16', Image.fromarray(np.asarray(base.convert('L'), dtype=np.uint16) * 257)
    yield '1', base.convert('1')

@pytest.mark.parametrize('mode,im', list(_modes()), ids=[m for m, _ in _modes()])
def test_every_mode_becomes_rgb_and_survives_a_file(tmp_path, mode, im):
    out = to_rgb(im)
    assert out.mode == 'RGB' and out.size == (40, 10)
    ext = 'tif' if mode in ('CMYK', 'I;16') else 'png'
    im.save(tmp_path/f'x.{ext}')
    assert to_rgb(open_image(tmp_path/f'x.{ext}')).mode == 'RGB'

def test_alpha_is_composited_over_white():
    im = Image.new('LA', (4, 4), (0, 0))   # black but fully transparent
    assert to_rgb(im).getpixel((1, 1)) == (255, 255, 255)
    pal = Image.new('P', (4, 4), 0); pal.info['transparency'] = 0
    assert to_rgb(pal).getpixel((0, 0)) == (255, 255, 255)

def test_bad_image_files_name_the_file(tmp_path):
    Image.new('L', (300, 100), 128).save(tmp_path/'ok.png')
    data = (tmp_path/'ok.png').read_bytes()
    (tmp_path/'truncated.png').write_bytes(data[:len(data) // 2])
    (tmp_path/'text.png').write_text('hello')
    (tmp_path/'empty.png').write_bytes(b'')
    for name, cause in [('truncated.png', 'unreadable'), ('text.png', 'not an image'), ('empty.png', 'not an image'),
                        ('missing.png', 'no such file')]:
        with pytest.raises(OmrBlogError) as e: open_image(tmp_path/name)
        assert name in str(e.value) and cause in str(e.value)
    with pytest.raises(OmrBlogError, match='folder'): open_image(tmp_path)

def test_absurdly_large_image_is_refused(tmp_path, monkeypatch):
    import omr_blog.batching as b
    Image.new('L', (400, 300)).save(tmp_path/'big.png')
    monkeypatch.setattr(b, 'MAX_PIXELS', 100_000)
    with pytest.raises(OmrBlogError, match='too large'): open_image(tmp_path/'big.png')

def test_pad_mask_marks_real_pixels_only():
    spec = ImageSpec(height=32, stride=16)
    ims = [torch.rand(3, 32, w) for w in (17, 64, 40)]
    batch, mask = pad_images(ims, spec)
    assert batch.shape == (3, 3, 32, 64) and mask.shape == (3, 32, 64)
    for i, im in enumerate(ims):
        w = im.shape[-1]
        assert torch.equal(batch[i, :, :, :w], im) and mask[i, :, :w].all() and not mask[i, :, w:].any()
        assert (batch[i, :, :, w:] == spec.pad_value).all()

def test_height_normalisation_keeps_aspect_ratio():
    x = image_to_tensor(Image.new('L', (600, 80), 255), ImageSpec(height=64, max_width=2000))
    assert x.shape == (3, 64, 480)
    assert image_to_tensor(Image.new('L', (6000, 80)), ImageSpec(height=64, max_width=1024)).shape[-1] == 1024

def test_sampler_is_a_reproducible_permutation_per_epoch():
    ws = [random.Random(i).randint(100, 900) for i in range(333)]
    s = WidthBucketSampler(ws, 8, seed=3)
    e0 = s.batches(); s.set_epoch(1); e1 = s.batches()
    assert sorted(i for b in e0 for i in b) == list(range(333)) and e0 != e1
    s.set_epoch(0); assert s.batches() == e0

def test_bucketing_pads_less_than_random_batches_on_the_training_split(tiny, tokenizer):
    ds = OmrDataset(tiny['train'], tokenizer, ImageSpec(height=64))
    bucketed = padded_share(ds.widths, WidthBucketSampler(ds.widths, 16, seed=0).batches())
    order = list(range(len(ds))); random.Random(0).shuffle(order)
    plain = padded_share(ds.widths, [order[k:k + 16] for k in range(0, len(order), 16)])
    assert bucketed < plain and bucketed <= 0.10

def test_loader_batch_is_consistent(tiny, tokenizer):
    ds = OmrDataset(tiny['val'], tokenizer, ImageSpec(height=64))
    batch = Collate(ds.spec, tokenizer.pad_id)([ds[i] for i in range(4)])
    assert batch['ids'][:, 0].eq(tokenizer.bos_id).all()
    for i in range(4):
        n = int(batch['lengths'][i]); assert batch['ids'][i, n - 1] == tokenizer.eos_id
        assert batch['pixel_mask'][i].sum() == 64 * ds[i][0].shape[-1]

@pytest.mark.parametrize('stages', ['scan', 'ink', 'spacing, ink, then scan'])
def test_augmented_stream_resumes_to_the_same_images_and_differs_per_epoch(tiny, tokenizer, stages):
    from functools import partial
    from omr_blog.degrade import DegradeConfig, InkConfig, SpacingConfig, training_copy
    from omr_blog.train import BatchStream
    spec = ImageSpec(height=48, max_width=512, stride=16)
    copies = partial(training_copy, spacing=SpacingConfig(p=1) if 'spacing' in stages else None,
                     ink=InkConfig(p=1) if 'ink' in stages else None,   # p=1: no draw leaves it clean
                     scan=DegradeConfig() if 'scan' in stages else None)
    ds = lambda: OmrDataset(tiny['train'].select(range(8)), tokenizer, spec, 64, copies, seed=3)
    stream = lambda d, epoch=0, pos=0: BatchStream(d, WidthBucketSampler(d.widths, 4, seed=3), Collate(spec, tokenizer.pad_id), epoch, pos)
    whole = stream(ds()); batches = [next(whole)['images'] for _ in range(5)]   # 2 batches per epoch: crosses two epochs
    resumed = stream(ds(), 1, 1)                                               # a run restarted at epoch 1, batch 1
    for want in batches[3:]: assert torch.equal(next(resumed)['images'], want)
    clean = OmrDataset(tiny['train'].select(range(8)), tokenizer, spec, 64)
    a = ds(); a.epoch = 0; e0 = a[2][0]; a.epoch = 1; e1 = a[2][0]
    if 'spacing' in stages:   # widths change on purpose, each epoch anew; the batch pads to its widest and masks the rest
        assert e0.shape[:2] == clean[2][0].shape[:2] and len({e0.shape[2], e1.shape[2], clean[2][0].shape[2]}) == 3
        items = [a[k] for k in range(4)]
        mask = Collate(spec, tokenizer.pad_id)(items)['pixel_mask']
        assert mask[:, 0, :].sum(1).tolist() == [im.shape[-1] for im, _ in items]   # each copy's own width is what is unmasked
    else: assert e0.shape == e1.shape == clean[2][0].shape                  # the same size: width buckets stay right
    assert not torch.equal(e0, e1) and not torch.equal(e0, clean[2][0])     # a new copy each epoch, never the clean one

def test_fitting_the_staff_makes_the_paper_around_it_irrelevant(tiny, tokenizer):
    from omr_blog.batching import fit_staff, model_view, staff_lines
    spec, strips = ImageSpec(height=64, staff_share=0.265), [to_rgb(tiny['train'][i]['image']) for i in range(12)]
    found = [s for s in strips if staff_lines(s) is not None]
    assert len(found) >= 10
    for s in found:
        rows = staff_lines(fit_staff(s, spec.staff_share))
        fitted = fit_staff(s, spec.staff_share)
        assert rows is not None and abs((rows[-1] - rows[0]) / fitted.height - spec.staff_share) < 2 / fitted.height
        roomy = Image.new('RGB', (s.width, s.height * 4), 'white'); roomy.paste(s, (0, s.height * 2))   # the same staff, low on more paper
        a, b = (np.asarray(model_view(x, spec), dtype=np.float32) for x in (s, roomy))
        assert a.shape == b.shape and np.abs(a - b).mean() < 3                   # the same view, within a pixel of rounding
        assert model_view(roomy, ImageSpec(height=64)).width < 0.7 * a.shape[1]  # which it was not without the fit
    ds = OmrDataset(tiny['train'].select(range(3)), tokenizer, spec)
    assert torch.equal(ds[0][0], image_to_tensor(tiny['train'][0]['image'], spec))

def test_the_sampler_sorts_by_the_widths_the_model_reads(tiny, tokenizer, monkeypatch):
    "Fitted or not, each strip's bucketing width is the width of the tensor it becomes; fitted widths are computed once."
    import omr_blog.batching as B
    split = tiny['train'].select(range(12))
    assert split.cache_files                                                   # (on disk: the fitted widths are cached)
    for spec in (ImageSpec(height=64), ImageSpec(height=64, staff_share=0.265), ImageSpec(height=64, staff_share=0.4)):
        ds = OmrDataset(split, tokenizer, spec)
        assert ds.widths == [ds[i][0].shape[-1] for i in range(len(ds))]
    monkeypatch.setattr(B, 'model_view', lambda *a: 1 / 0)                     # a second dataset of the same split and spec
    assert OmrDataset(split, tokenizer, ImageSpec(height=64, staff_share=0.4)).widths == ds.widths   # reads the cache

def test_the_degraded_split_degrades_first_and_fits_the_copy(tiny, tokenizer):
    "Every model of the degraded split is given the same degraded pixels; a fitted one then finds the staff in that copy."
    from omr_blog.batching import fit_staff, model_view
    from omr_blog.degrade import degrade
    split, fitted, plain = tiny['test'].select(range(6)), ImageSpec(height=64, staff_share=0.265), ImageSpec(height=64)
    seen, refitted = {}, 0
    def scan(im, seed, who):
        seen.setdefault(who, []).append(np.asarray(im).copy()); return degrade(im, seed)
    a = OmrDataset(split, tokenizer, fitted, transform=lambda im, seed: scan(im, seed, 'fitted'), fit_after_transform=True)
    b = OmrDataset(split, tokenizer, plain, transform=lambda im, seed: scan(im, seed, 'plain'), fit_after_transform=True)
    for i in range(len(split)):
        x, y = a[i][0], b[i][0]
        assert np.array_equal(seen['fitted'][i], seen['plain'][i])          # the same strip was degraded for both ...
        copy = degrade(model_view(split[i]['image'], plain), (0, 0, i))
        assert torch.equal(x, image_to_tensor(fit_staff(copy, 0.265), plain)) and torch.equal(y, image_to_tensor(copy, plain))   # ... then fitted
        refitted += x.shape != y.shape or not torch.equal(x, y)
    assert refitted >= 1                                                       # (and the fit did find staves in some copies)
    train = OmrDataset(split, tokenizer, fitted, transform=degrade)            # training: the clean strip fitted, its copy degraded
    assert torch.equal(train[1][0], image_to_tensor(degrade(model_view(split[1]['image'], fitted), (0, 0, 1)), plain))

def _staff_page(width: int, height: int, top: int, gap: int, tilt: float = 0.0, blur: float = 0.0, light: float = 0.0) -> Image.Image:
    "Five lines of a staff with a few notes, tilted, blurred and unevenly lit like a scan."
    from PIL import ImageDraw, ImageFilter
    im = Image.new('L', (width, height), 255); d = ImageDraw.Draw(im)
    for k in range(5): d.line((20, top + k * gap, width - 20, top + k * gap), fill=0, width=max(1, gap // 6))
    for x in range(60, width - 40, width // 12): d.ellipse((x, top + gap, x + 1.3 * gap, top + 2 * gap), fill=0)
    im = im.rotate(tilt, resample=Image.Resampling.BILINEAR, fillcolor=255).filter(ImageFilter.GaussianBlur(blur))
    ramp = 1 - light * np.linspace(0, 1, width)[None, :]
    return Image.fromarray((np.asarray(im, np.float32) * ramp).astype(np.uint8))

@pytest.mark.parametrize('width,height,top,gap', [(500, 64, 24, 4), (1000, 64, 22, 5), (2400, 240, 80, 18)])
def test_the_scan_finder_levels_and_finds_a_tilted_blurred_unevenly_lit_staff(width, height, top, gap):
    from omr_blog.batching import even_light, level_angle, scanned_staff_lines, staff_lines
    for tilt in (-1.5, 0.0, 1.0):
        scan = _staff_page(width, height, top, gap, tilt, blur=gap / 4, light=0.35)
        ink = Image.fromarray((even_light(scan) * 255).astype(np.uint8))
        assert abs(level_angle(ink) + tilt) <= 0.25                          # turned back level, also when searched narrowed
        rows = scanned_staff_lines(scan)
        assert rows is not None and abs(np.ptp(rows) - 4 * gap) <= max(1.5, 0.1 * 4 * gap), (tilt, rows)
    assert staff_lines(_staff_page(width, height, top, gap, 1.5, blur=gap / 4, light=0.35)) is None   # what the exact finder cannot
    assert scanned_staff_lines(Image.new('L', (width, height), 255)) is None

def test_no_single_staff_means_no_fit():
    from omr_blog.batching import fit_staff
    blank = Image.new('L', (400, 80), 255)
    lines = Image.new('L', (400, 120), 255)
    for y in [20, 26, 32, 38, 44, 70, 76, 82, 88, 94]: lines.paste(0, (10, y, 390, y + 1))   # a grand staff: ten lines
    for im in (blank, lines, Image.new('L', (1, 1), 0)):
        assert fit_staff(im, 0.25) is im
    one = lines.crop((0, 0, 400, 60))                                          # its upper staff alone
    assert fit_staff(one, 0.25).size == (400, round(24 / 0.25))
