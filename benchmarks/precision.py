"""fp32 vs bf16 autocast for one cpu-tiny training step (forward + backward), side by side in one run.
On CPUs without bf16 instructions (no avx512_bf16/amx_bf16 in /proc/cpuinfo) bf16 is emulated and much slower,
which is why the presets say `precision: auto`.

    .venv/bin/python benchmarks/precision.py [--backbone resnet50] [--repeat 3]
"""
import argparse, time
import torch
from omr_blog.batching import Collate, OmrDataset, WidthBucketSampler
from omr_blog.dataset import load_omr_dataset
from omr_blog.tokenizer import train_dataset_tokenizer
from omr_blog.dataset import resolve_dataset_dir
from omr_blog.checkpoints import build_model
from omr_blog.config import cpu_has_fast_bf16, make_config

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backbone', default='resnet50')
    ap.add_argument('--dataset', default='omr-synth-cpu')
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    cfg = make_config('cpu-tiny', a.backbone, dataset=a.dataset)
    d = resolve_dataset_dir(cfg.dataset); tok = train_dataset_tokenizer(d, cfg.vocab_size)
    m = build_model(cfg, tok)
    spec = cfg.image_spec(m.backbone.multiple)   # as the checkpoint reads (its staff fit included)
    ds = OmrDataset(load_omr_dataset(d)['train'], tok, spec, cfg.decoder.max_len)
    b = Collate(spec, tok.pad_id)([ds[i] for i in WidthBucketSampler(ds.widths, cfg.batch_size, seed=0).batches()[0]])
    def step(dtype):
        m.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = m.loss(b['images'], b['pixel_mask'], b['ids'])
        loss.backward()
    res = {}
    for name, dtype in (('fp32', None), ('bf16', torch.bfloat16)):
        step(dtype)
        t = time.perf_counter()
        for _ in range(a.repeat): step(dtype)
        res[name] = (time.perf_counter() - t) / a.repeat
    print(f'CPU has native bf16: {cpu_has_fast_bf16()}; {torch.get_num_threads()} threads; batch {cfg.batch_size} strips, {a.backbone} (tiny)')
    print(f'fp32 {res["fp32"]*1000:7.0f} ms/step   bf16 autocast {res["bf16"]*1000:7.0f} ms/step   bf16/fp32 time ratio {res["bf16"]/res["fp32"]:.1f}x')

if __name__ == '__main__': main()
