"""How much of what a checkpoint reads is the look of its training strips: its music SER on the test strips as they
are, and on the same strips changed in one way each, side by side in one run, as ratios to the unchanged strips.
A model that reads music barely moves; one that learned its engravers' look moves a lot.

Changes, made at the engraving's own resolution before the loader scales a strip to the model's height:
heavier / lighter ink (every stroke grown or thinned by one pixel: a 3 x 3 minimum or maximum filter), wider /
narrower spacing (the strip stretched horizontally). Greedy decoding, as `omr-blog eval` does.

    .venv/bin/python benchmarks/engraving_sensitivity.py CHECKPOINT [CHECKPOINT ...] [--dataset D] [--split test] [--n 300] [--out F]
e.g. runs/cpu-long-engravers-b8/resnet50/checkpoint runs/cpu-long-engravers-ink/resnet50/checkpoint
--out writes the figures as a JSON record (one entry per checkpoint and dataset, with provenance) for the post.
"""
import argparse, json
from pathlib import Path
import torch
from PIL import ImageFilter
from omr_blog.checkpoints import load_checkpoint
from omr_blog.core import provenance, write_json
from omr_blog.dataset import load_omr_dataset
from omr_blog.degrade import SpacingConfig, vary_spacing
from omr_blog.evaluation import evaluate_split

def stretched(f: float):   # the training loader's own spacing stage, at one fixed factor
    return lambda im: vary_spacing(im, 0, SpacingConfig(p=1, narrowest=f, widest=f))

CHANGES = {'as engraved': None,
           'heavier ink': lambda im: im.convert('L').filter(ImageFilter.MinFilter(3)),
           'lighter ink': lambda im: im.convert('L').filter(ImageFilter.MaxFilter(3)),
           'spacing x1.3': stretched(1.3), 'spacing x0.8': stretched(0.8)}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('checkpoints', nargs='+', help='checkpoint folders (config.json, model.safetensors, tokenizer/)')
    ap.add_argument('--dataset', help="default: each checkpoint's own; omr-synth-cpu-lilypond for the held-out engraver")
    ap.add_argument('--split', default='test')
    ap.add_argument('--n', type=int, default=300, help='test strips (the first n)')
    ap.add_argument('--out', help='a JSON record to add these figures to (entries keyed by preset and dataset)')
    a = ap.parse_args()
    record = json.loads(Path(a.out).read_text()) if a.out and Path(a.out).exists() else {'entries': {}}
    torch.manual_seed(0)
    for ckpt in a.checkpoints:
        model, tok, cfg = load_checkpoint(ckpt)
        spec = cfg.image_spec(model.backbone.multiple)
        split = load_omr_dataset(a.dataset or cfg.dataset)[a.split]
        split = split.select(range(min(a.n, len(split))))
        ser = {}
        for name, change in CHANGES.items():
            strips = split if change is None else split.map(lambda r: {'image': change(r['image'])}, features=split.features)
            ser[name] = evaluate_split(model, strips, tok, spec, None, 32, torch.device('cpu'), None, cfg.eval_max_new_tokens)['music_ser']
        print(f'{ckpt} ({cfg.preset}, {a.dataset or cfg.dataset} {a.split}, {len(split)} strips): music SER as engraved {ser["as engraved"]:.3f}; '
              + ', '.join(f'{k} {v:.3f} ({v / ser["as engraved"]:.2f}x)' for k, v in ser.items() if k != 'as engraved'), flush=True)
        if a.out:   # written after each checkpoint: a long run keeps what it measured
            record['entries'][f'{cfg.preset}|{a.dataset or cfg.dataset}'] = {
                'checkpoint': str(ckpt), 'preset': cfg.preset, 'dataset': a.dataset or cfg.dataset, 'split': a.split,
                'n': len(split), 'music_ser': ser, 'provenance': provenance()}
            write_json(Path(a.out), record)

if __name__ == '__main__': main()
