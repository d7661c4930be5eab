"""Data-loader throughput (decode PNG, normalise height, pad, mask, tokenise) against what a CPU training step
consumes, measured side by side in one run. Target (issue 2): loader >= 5x the training step's samples/s.
The loader is timed clean and with the heaviest training copy, `--set spacing=true ink=true augment=true`
(01f_degrade: spacing, ink, then a scan), and that copy again with each strip's staff fitted first (01e fit_staff,
`--staff-share`, the shipped recipe's view).
Also prints the padded-pixel share with width buckets vs pad-to-max (target <= 10%).

The training step is the cpu-tiny preset's (forward + backward + AdamW step of the given backbone, in the
precision the preset resolves to on this machine), fed with batches from the same loader.

    .venv/bin/python benchmarks/loader_throughput.py [--dataset omr-synth-cpu] [--batches 60]
"""
import argparse, time
import torch
from omr_blog.batching import Collate, ImageSpec, OmrDataset, WidthBucketSampler
from omr_blog.dataset import load_omr_dataset
from omr_blog.tokenizer import train_dataset_tokenizer
from omr_blog.dataset import dataset_path
from functools import partial
from omr_blog.degrade import DegradeConfig, InkConfig, SpacingConfig, training_copy

def loader_rate(ds, tok, batch_size, batches, workers):
    dl = torch.utils.data.DataLoader(ds, batch_sampler=WidthBucketSampler(ds.widths, batch_size, seed=0),
                                     collate_fn=Collate(ds.spec, tok.pad_id), num_workers=workers)
    it = iter(dl); next(it)   # start-up (worker fork) is not throughput
    t = time.perf_counter(); n = 0
    for _ in range(batches):
        n += next(it)['images'].shape[0]
    return n / (time.perf_counter() - t)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dataset', default='omr-synth-cpu')
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--batches', type=int, default=60)
    ap.add_argument('--height', type=int, default=64)
    ap.add_argument('--backbone', default='resnet50', help='the training step compared against')
    ap.add_argument('--steps', type=int, default=10, help='training steps timed')
    ap.add_argument('--staff-share', type=float, default=0.265, help="the staff fit's share of the height (the shipped preset's)")
    a = ap.parse_args()
    d = load_omr_dataset(a.dataset)
    tok = train_dataset_tokenizer(dataset_path(a.dataset) if not str(a.dataset).startswith('/') else a.dataset)
    ds = OmrDataset(d['train'], tok, ImageSpec(height=a.height))
    import random
    from omr_blog.batching import padded_share
    order = list(range(len(ds))); random.Random(0).shuffle(order)
    plain = padded_share(ds.widths, [order[k:k + a.batch_size] for k in range(0, len(order), a.batch_size)])
    bucketed = padded_share(ds.widths, WidthBucketSampler(ds.widths, a.batch_size, seed=0).batches())
    print(f'padded pixels on train ({len(ds)} images, batch {a.batch_size}): width buckets {bucketed:.1%} '
          f'vs pad-to-max of random batches {plain:.1%} (target <= 10%)')
    rates = []
    for w in (0, 1):
        rates.append(loader_rate(ds, tok, a.batch_size, a.batches, w))
        print(f'loader, {w} worker process(es): {rates[-1]:7.1f} samples/s')
    loader = max(rates)
    aug = OmrDataset(d['train'], tok, ImageSpec(height=a.height), transform=partial(training_copy, spacing=SpacingConfig(), ink=InkConfig(), scan=DegradeConfig()))
    aug_rates = [loader_rate(aug, tok, a.batch_size, a.batches, w) for w in (0, 1)]
    for w, r in enumerate(aug_rates): print(f'loader with spacing, ink and scan/photo augmentation, {w} worker process(es): {r:7.1f} samples/s')
    fitted = OmrDataset(d['train'], tok, ImageSpec(height=a.height, staff_share=a.staff_share), transform=aug.transform)
    fit_rates = [loader_rate(fitted, tok, a.batch_size, a.batches, w) for w in (0, 1)]
    for w, r in enumerate(fit_rates): print(f'the same with the staff fitted first (share {a.staff_share}), {w} worker process(es): {r:7.1f} samples/s')
    from omr_blog.model import lm_loss
    from omr_blog.checkpoints import build_model
    from omr_blog.config import make_config, resolve_precision
    cfg = make_config('cpu-tiny', a.backbone, dataset=a.dataset)
    tok_t = train_dataset_tokenizer(dataset_path(a.dataset), cfg.vocab_size)
    m = build_model(cfg, tok_t).train()
    ds_t = OmrDataset(d['train'], tok_t, cfg.image_spec(m.backbone.multiple))
    batches = [Collate(ds_t.spec, tok_t.pad_id)([ds_t[i] for i in b]) for b in WidthBucketSampler(ds_t.widths, cfg.batch_size, seed=0).batches()[:a.steps + 1]]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    amp = resolve_precision(cfg.precision, torch.device('cpu'))
    def step(b):
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=amp or torch.float32, enabled=amp is not None):
            loss = lm_loss(m(b['images'], b['pixel_mask'], b['ids']), b['ids'], tok_t.pad_id)
        loss.backward(); opt.step()
    step(batches[0])
    t = time.perf_counter()
    for b in batches[1:]: step(b)
    train_rate = a.steps * cfg.batch_size / (time.perf_counter() - t)
    print(f'training step (cpu-tiny {a.backbone}, batch {cfg.batch_size}, {amp or "fp32"}): {train_rate:7.1f} samples/s')
    print(f'loader / training step: {loader / train_rate:.1f}x (target >= 5x)')
    print(f'augmenting loader / training step: {max(aug_rates) / train_rate:.1f}x (target >= 5x)')
    print(f'augmenting loader with the staff fit / training step: {max(fit_rates) / train_rate:.1f}x (target >= 5x)')

if __name__ == '__main__': main()
