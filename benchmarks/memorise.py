"""Can each tiny backbone memorise a few dozen training strips? A model whose image path is broken cannot: it can
only learn the labels: teacher forcing lets a decoder name a memorised tune from its first tokens, so the reference
is the same run on blank strips (`--blank`), which must end higher. One that memorises the strips but stays on the
plateau on unseen ones has a working path and lacks what generalises (Section 3's levers for the transformers).
Same recipe as the sweep (`cpu-short`): batch 8, its learning rate, bf16 autocast where the CPU has it, the same strips
cycled for `--steps` optimizer steps.

    .venv/bin/python benchmarks/memorise.py [--strips 64] [--steps 300] [--backbones resnet50 vit_small ...] [--blank]
    .venv/bin/python benchmarks/memorise.py --backbones vit_small --set memory_norm=instance --blank   # a recipe change
"""
import argparse, time
import torch
from omr_blog.backbones import BACKBONES
from omr_blog.batching import Collate, OmrDataset
from omr_blog.checkpoints import build_model
from omr_blog.cli import _parse_sets
from omr_blog.config import make_config, resolve_precision
from omr_blog.train import adamw, batch_loss, load_training_data, mixed_precision, optimizer_step

def cycling_steps(backbone: str, strips: int, preset: str, blank: bool = False, **overrides):
    """The sweep's recipe on the same `strips` training strips, cycled: a function that takes optimizer step `s` and
    returns its loss (benchmarks/sweep_lanes.py times the same steps)."""
    cfg = make_config(preset, backbone, **overrides)
    torch.manual_seed(0)
    data, tok, _ = load_training_data(cfg)
    spec = cfg.image_spec(16)
    ds, collate = OmrDataset(data['train'].select(range(strips)), tok, spec, cfg.decoder.max_len), Collate(spec, tok.pad_id)
    model = build_model(cfg, tok).train()
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    amp = resolve_precision(cfg.precision, torch.device('cpu'))
    def step(s: int) -> float:
        b = collate([ds[(s * cfg.batch_size + j) % strips] for j in range(cfg.batch_size)])
        if blank: b['images'] = torch.ones_like(b['images'])   # white paper: the labels alone
        with mixed_precision(torch.device('cpu'), amp): loss, _ = batch_loss(model, b, tok)
        opt.zero_grad(); loss.backward(); optimizer_step(model, opt, None, cfg.grad_clip)
        return loss.item()
    return step

def memorise(backbone: str, strips: int, steps: int, preset: str, blank: bool = False, **overrides) -> tuple[float, float, float]:
    "Mean training loss over the first and the last 50 steps on the same `strips` strips, and the seconds it took."
    step = cycling_steps(backbone, strips, preset, blank, **overrides)
    t = time.perf_counter()
    losses = [step(s) for s in range(steps)]
    w = min(50, steps)
    return sum(losses[:w]) / w, sum(losses[-w:]) / w, time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--strips', type=int, default=64)
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--preset', default='cpu-short')
    ap.add_argument('--backbones', nargs='*', default=list(BACKBONES), choices=list(BACKBONES), metavar='BACKBONE')
    ap.add_argument('--blank', action='store_true', help='also each backbone on blank strips (the labels-only reference)')
    ap.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE', help='config fields changed, e.g. memory_norm=instance')
    a = ap.parse_args()
    over = _parse_sets(a.set)
    print(f'{a.strips} training strips cycled for {a.steps} steps ({a.preset} recipe{"; " + " ".join(a.set) if a.set else ""}); '
          'training loss, first and last 50 steps:')
    for name in a.backbones:
        first, last, secs = memorise(name, a.strips, a.steps, a.preset, **over)
        line = f'{name:16s} {first:5.2f} -> {last:5.3f}   ({secs:.0f} s)'
        if a.blank:
            _, ref, _ = memorise(name, a.strips, a.steps, a.preset, blank=True, **over)
            line += f'   blank strips -> {ref:5.3f}: the image lowers it {ref / last:.1f}x'
        print(line, flush=True)

if __name__ == '__main__': main()
