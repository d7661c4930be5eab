"""Data-loader throughput (decode PNG, normalise height, pad, mask, tokenise) against what a CPU training step
consumes, measured side by side in one run. Target (issue 2): loader >= 5x the training step's samples/s.
Also prints the padded-pixel share with width buckets vs pad-to-max (target <= 10%).

The training step needs the model of Section 2 (`omr_blog.model`); until it exists this prints the loader alone.

    .venv/bin/python benchmarks/loader_throughput.py [--dataset omr-synth-cpu] [--batches 60]
"""
import argparse, importlib.util, time
import torch
from omr_blog.batching import Collate, ImageSpec, OmrDataset, WidthBucketSampler
from omr_blog.dataset import load_omr_dataset
from omr_blog.tokenizer import train_dataset_tokenizer
from omr_blog.dataset import dataset_path

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
    for w in (0, 1):
        print(f'loader, {w} worker process(es): {loader_rate(ds, tok, a.batch_size, a.batches, w):7.1f} samples/s')
    if importlib.util.find_spec('omr_blog.model') is None:
        print('training step: omr_blog.model does not exist yet (Section 2); no ratio to report')

if __name__ == '__main__': main()
