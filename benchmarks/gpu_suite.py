"""The GPU suite: the measurements the post needs from a GPU, prepared here and run there in one command.

A GPU is lent now and then, briefly (about 10 minutes, no network, an image without `datasets`, verovio, music21,
papermill, bitsandbytes or wandb). So everything it needs is prepared on the CPU machine (`make gpu-prep`: the data,
the tokenizers, the missing pure-Python packages unpacked into `.gpu/site`), and the suite writes one JSON record per
stage, with provenance naming the GPU, as soon as the stage ends, most valuable first, so that a run cut off still
leaves the records that matter most:

  1. train_step.json  the gpu-full preset on pages (1024 px, the 6x512 decoder, bf16 autocast), every backbone at
                      micro-batch 4, 8 and 16: samples/s, tokens/s, peak VRAM (max_memory_allocated), MFU from counted
                      FLOPs against the GPU's peak bf16 rate; an OOM is a record, not a crash
  2. estimator.json   Section 6's memory estimate beside each peak measured in stage 1
  3. decoding.json    greedy (eager KV cache, and the CUDA-graph step) and beam search of the 6x512 decoder against
                      transformers' VisionEncoderDecoderModel.generate at equal dims, batch 1 and 16, 512 new tokens;
                      and the training step against it (targets: >= 1.5x its greedy tokens/s, >= 1.2x its step)
  4. finetune.json    full fine-tuning vs LoRA vs QLoRA (nf4) for two backbones: step time and peak VRAM
  5. strips.json      with the time left: the CPU sweep's recipe (cpu-short) per backbone on the GPU, loss curves

    make gpu-prep                                                     # here, once: fills .gpu/ (about 20 MB)
    PYTHONPATH=.gpu/site:. python3 benchmarks/gpu_suite.py run --out $OUT   # there: <= 8 minutes on one H100
    .venv/bin/python benchmarks/gpu_suite.py collect FOLDER                 # here: the fetched records -> results/<gpu>/suite/
    .venv/bin/python benchmarks/gpu_suite.py estimate FOLDER                # here: a changed estimator against the peaks measured there
    .venv/bin/python benchmarks/gpu_suite.py run --dry-run --out /tmp/s     # here: the same code paths, tiny sizes, CPU

`--dry-run` (in `make test`) runs every stage on the CPU with tiny models, so the suite cannot rot between GPU visits.
The suite uses no API newer than the GPU image's torch 2.11 and transformers 5.17.
"""
from __future__ import annotations
import argparse, gc, json, os, re, shutil, sys, time, zipfile
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]   # the package and vs_transformers, without installing

import torch
from omr_blog.backbones import BACKBONES

STAGES = ('train_step', 'estimator', 'decoding', 'finetune', 'strips')
# Peak dense bf16 tensor-core rate (FLOP/s) by GPU name, from the vendors' data sheets (sparsity not counted).
PEAK_BF16 = {'H200': 989e12, 'H100 80GB HBM3': 989e12, 'H100 NVL': 835e12, 'H100 PCIe': 756e12, 'H100': 989e12,
             'A100': 312e12, 'L40S': 362e12, 'L4': 121e12, 'A10G': 70e12, 'T4': 65e12}
# Wheels the GPU image lacks (versions as pinned here): pure Python, or built for CPython 3.12 on x86-64 Linux.
CARRIED = ('datasets', 'dill', 'multiprocess', 'abctoolkit', 'rapidfuzz', 'bitsandbytes')
def carried(member: str) -> bool:
    """What of a wheel travels: bitsandbytes only for the image's CUDA 13.0 (its other builds are 120 MB); rapidfuzz without its
    compiled modules (12 MB: its pure-Python fallback computes the same edit distances, fast enough for the suite's 100 strips)."""
    if 'libbitsandbytes_' in member: return member.endswith('libbitsandbytes_cuda130.so')
    return not (member.startswith('rapidfuzz/') and member.endswith('.so'))

def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding,
                        _groups, output_mask, out_shape=None, **kw) -> int:
    """A convolution's backward: its input gradient and its weight gradient each cost what the forward costs. PyTorch's own
    formula (torch 2.11 to 2.13) loses the group division and counts a depthwise convolution's backward `groups` times
    over (pytorch/pytorch#183405): EfficientNet-B0's backward came out at 38x its forward."""
    from torch.utils.flop_counter import conv_flop_count
    return conv_flop_count(x_shape, w_shape, grad_out_shape, transposed) * (int(output_mask[0]) + int(output_mask[1]))

def flop_counter():
    "torch's FlopCounterMode with the convolution backward counted right."
    from torch.utils.flop_counter import FlopCounterMode
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})

def source_hash() -> str:
    "A digest of the code the suite runs (the package, the benchmarks, the configs): prep records it, run compares."
    import hashlib
    h = hashlib.sha256()
    for f in sorted([*ROOT.glob('omr_blog/*.py'), *ROOT.glob('benchmarks/*.py'), *ROOT.glob('configs/**/*.yaml')]):
        h.update(f.relative_to(ROOT).as_posix().encode()); h.update(f.read_bytes())
    return h.hexdigest()

def peak_bf16_flops(name: str | None) -> float | None:
    "The GPU's peak bf16 rate by the longest matching name (None: unknown, MFU left missing)."
    hits = [k for k in PEAK_BF16 if name and k in name]
    return PEAK_BF16[max(hits, key=len)] if hits else None

# ---------------------------------------------------------------------------------------------------------------- prep
def export_pages(ds_dir: Path, out: Path, n: int, height: int) -> dict:
    "The first `n` training pages of a built dataset as one Parquet file, scaled to `height` (what the suite feeds at that height)."
    import io
    import pyarrow as pa, pyarrow.parquet as pq
    from omr_blog.batching import ImageSpec, resize_to_height, to_rgb
    from omr_blog.dataset import build_report, load_omr_dataset
    split = load_omr_dataset(ds_dir)['train']
    rows = []
    for rec in split.select(range(min(n, len(split)))):
        buf = io.BytesIO(); resize_to_height(to_rgb(rec['image']), ImageSpec(height=height, max_width=10**6)).save(buf, 'PNG')
        rows.append({'image': buf.getvalue(), 'transcription': rec['transcription'], 'filename': rec['filename']})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return {'name': ds_dir.name, 'fingerprint': build_report(ds_dir)['fingerprint'], 'pages': len(rows), 'height': height}

def export_strips(ds_dir: Path, out: Path, n_train: int, n_eval: int, height: int, vocab_size: int) -> dict:
    "A subset of a strips dataset, scaled to the training height, saved as a dataset `train()` reads (with its tokenizer)."
    from datasets import DatasetDict
    from omr_blog.batching import ImageSpec, resize_to_height, to_rgb
    from omr_blog.dataset import build_report, load_omr_dataset
    from omr_blog.tokenizer import tokenizer_path, train_dataset_tokenizer
    from omr_blog.core import write_json
    spec, ds = ImageSpec(height=height, max_width=10**6), load_omr_dataset(ds_dir)
    sizes = {'train': n_train, 'val': n_eval, 'test': n_eval}
    small = DatasetDict({s: ds[s].select(range(min(k, len(ds[s])))).remove_columns('musicxml').map(lambda r: {'image': resize_to_height(to_rgb(r['image']), spec)})
                         for s, k in sizes.items()})
    if out.exists(): shutil.rmtree(out)
    small.save_to_disk(str(out/'hf'))
    train_dataset_tokenizer(ds_dir, vocab_size).save(tokenizer_path(out, vocab_size))   # the sweep's own BPE
    src = build_report(ds_dir)
    write_json(out/'report.json', {'name': out.name, 'fingerprint': f'{src["fingerprint"]}:first{sizes}@{height}px',
                                   'sizes': {s: len(small[s]) for s in small}, 'source': src['name']})
    return {'name': src['name'], 'fingerprint': src['fingerprint'], 'sizes': {s: len(small[s]) for s in small}, 'height': height}

def unpack_wheels(out: Path, names=CARRIED, python: str = '3.12') -> list[str]:
    "Download the wheels of `names` (this environment's versions) for CPython `python` on x86-64 Linux; unpack into `out`."
    import subprocess
    from importlib.metadata import version
    wheels = out.parent/'wheels'
    wheels.mkdir(parents=True, exist_ok=True)
    specs = [f'{n}=={version(n)}' for n in names]
    plats = [a for p in ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64', 'manylinux_2_17_x86_64',
                         'manylinux2014_x86_64') for a in ('--platform', p)]
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
                    '--python-version', python, '--implementation', 'cp', *plats, '-d', str(wheels), *specs], check=True)
    if out.exists(): shutil.rmtree(out)
    for w in sorted(wheels.glob('*.whl')):
        with zipfile.ZipFile(w) as z:
            z.extractall(out, [m for m in z.namelist() if carried(m)])
    shutil.rmtree(wheels)
    return specs

def prep(a):
    "Fill the carry folder: pages, strips, tokenizers, unpacked wheels and the commit they were made from."
    from omr_blog.core import git_state, write_json
    from omr_blog.dataset import BuildConfig, build_dataset, resolve_dataset_dir
    state = git_state()
    if state['dirty'] and not a.allow_dirty:
        sys.exit('gpu-prep: the tree has uncommitted changes: the GPU records would name a commit that is not their code '
                 '(commit first, or pass --allow-dirty for a rehearsal)')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    pages_dir = resolve_dataset_dir(a.pages) if a.pages else build_dataset(BuildConfig(name='omr-synth-gpu-pages', granularity='pages', train=a.n_pages,
                                                                        val=1, test=1, domain_shift=False, max_staves=99,
                                                                        max_systems_per_piece=10**9, shard_pieces=a.n_pages))
    strips_dir = resolve_dataset_dir(a.strips)
    info = {'git': state, 'source_hash': source_hash(), 'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            'pages': export_pages(pages_dir, out/'pages.parquet', a.n_pages, a.page_height),
            'strips': export_strips(strips_dir, out/'strips', a.n_strips, a.n_eval, a.strip_height, a.strip_vocab)}
    from omr_blog.tokenizer import train_dataset_tokenizer
    train_dataset_tokenizer(strips_dir, 4096).save(out/'tokenizer')   # the pages' BPE: vocab 4096 as the gpu-full preset (the sweep data's)
    info['wheels'] = [] if a.no_wheels else unpack_wheels(out/'site')
    write_json(out/'prep.json', info)
    size = sum(f.stat().st_size for f in out.rglob('*') if f.is_file())
    print(f'{out}: {size / 2**20:.1f} MiB ({info["pages"]["pages"]} pages, {info["strips"]["sizes"]} strips, '
          f'{len(info["wheels"])} packages) from commit {str(state["commit"])[:8]}{" (dirty)" if state["dirty"] else ""}')

# ----------------------------------------------------------------------------------------------------------- the suite
class Suite:
    "What every stage shares: device, sizes, the clock, the data and the records."
    def __init__(self, a):
        from omr_blog.config import resolve_precision
        from omr_blog.tokenizer import AbcTokenizer
        self.a, self.dry = a, a.dry_run
        self.device = torch.device('cuda' if torch.cuda.is_available() and not a.dry_run else 'cpu')
        if self.device.type == 'cpu' and not a.dry_run: sys.exit('gpu_suite: no GPU here (use --dry-run to rehearse on the CPU)')
        self.amp = resolve_precision('auto', self.device)            # bf16 on the GPU; on a CPU what it supports
        self.t0, self.budget = time.monotonic(), a.budget_s
        self.out = Path(a.out); self.out.mkdir(parents=True, exist_ok=True)
        import tempfile
        self.scratch = Path(tempfile.mkdtemp(prefix='gpu-suite-runs-'))   # stage 5's checkpoints and logs: only records go to `out`
        self.data = Path(a.data)
        self.prep = json.loads((self.data/'prep.json').read_text()) if (self.data/'prep.json').exists() else {}
        self.tok = AbcTokenizer.load(self.data/'tokenizer')
        import pyarrow.parquet as pq
        self.pages = pq.read_table(self.data/'pages.parquet').to_pylist()
        self.gpu = torch.cuda.get_device_name(0) if self.device.type == 'cuda' else None
        self.peak = peak_bf16_flops(self.gpu)
        self.batches = a.batches or ([1, 2] if self.dry else [4, 8, 16])

    def left(self) -> float: return self.budget - (time.monotonic() - self.t0)

    def provenance(self) -> dict:
        """The package's provenance. The GPU machine's copy may carry no git, or a stale one, so the commit is the one
        `gpu-prep` recorded whenever the code that runs is byte for byte the code prep saw; otherwise git's own view, or
        prep's commit marked dirty."""
        from omr_blog.core import provenance
        p = provenance()
        if self.prep.get('git'):
            if self.prep.get('source_hash') == source_hash(): p['git'] = {**self.prep['git'], 'from': 'gpu-prep'}
            elif p['git'].get('commit') is None: p['git'] = {**self.prep['git'], 'dirty': True, 'from': 'gpu-prep (code changed since)'}
        return p

    def write(self, stage: str, rows: list[dict], **extra) -> Path:
        from omr_blog.core import write_json
        rec = {'stage': stage, 'gpu': self.gpu, 'dry_run': self.dry, 'precision': str(self.amp).removeprefix('torch.') if self.amp else 'fp32',
               'elapsed_s': round(time.monotonic() - self.t0, 1), 'rows': rows, **extra,
               'data': {k: self.prep.get(k) for k in ('pages', 'strips')}, 'provenance': self.provenance()}
        path = write_json(self.out/f'{stage}.json', rec)
        print(f'[{rec["elapsed_s"]:6.1f}s] {stage}: {len(rows)} rows -> {path}', flush=True)
        return path

    def config(self, backbone: str, **overrides):
        "The gpu-full preset (dry run: cpu-tiny's tiny sizes) at the pages' height; random weights (no hub there)."
        from omr_blog.config import make_config
        if self.dry: return make_config('cpu-tiny', backbone, pretrained=False, height=64, max_width=256, **overrides)
        return make_config('gpu-full', backbone, pretrained=False, **overrides)

    def build(self, cfg, finetune: str = 'full'):
        "The model of `cfg` with this tokenizer, random weights, on the current default device (plan: the meta device)."
        from omr_blog.finetune import prepare_finetune
        from omr_blog.model import ModelConfig, MusicTrOCR
        dec = replace(cfg.decoder, vocab_size=len(self.tok), pad_id=self.tok.pad_id, bos_id=self.tok.bos_id, eos_id=self.tok.eos_id,
                      dropout=0.0)   # dropout off: the same work in every step of a timing
        torch.manual_seed(0)
        return prepare_finetune(MusicTrOCR(ModelConfig(cfg.backbone, cfg.backbone_size, False, dec)), finetune).train()

    def model(self, cfg, finetune: str = 'full'): return self.build(cfg, finetune).to(self.device)

    def page_batch(self, cfg, stride: int, n: int) -> dict:
        "`n` real pages (cycled if fewer) at the config's height, padded as training pads them, on the device."
        import io
        from PIL import Image
        from omr_blog.batching import Collate, image_to_tensor
        spec = cfg.image_spec(stride)
        items = [(image_to_tensor(Image.open(io.BytesIO(r['image'])), spec), self.tok.encode_label(r['transcription'], cfg.decoder.max_len))
                 for r in (self.pages[i % len(self.pages)] for i in range(n))]
        return {k: v.to(self.device) for k, v in Collate(spec, self.tok.pad_id)(items).items()}

    def sync(self):
        if self.device.type == 'cuda': torch.cuda.synchronize()

    def free(self):
        gc.collect()
        if self.device.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

    def peak_bytes(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.device.type == 'cuda' else None

def error_line(e: BaseException, n: int = 200) -> str:
    "An exception as one short line for a record: its type and the first line of its message."
    return f'{type(e).__name__}: {str(e).splitlines()[0][:n] if str(e) else ""}'

def forward_backward(s: Suite, model, b: dict):
    "The step's work: autocast forward, the loss, backward (what FLOPs are counted on; `plan` runs it on the meta device)."
    from omr_blog.model import lm_loss
    with torch.autocast(s.device.type, dtype=s.amp, enabled=s.amp is not None):
        loss = lm_loss(model(b['images'], b['pixel_mask'], b['ids']), b['ids'], s.tok.pad_id)
    loss.backward()
    return loss

def train_step(s: Suite, model, opt, b: dict):
    "One optimizer step as training takes it: forward and backward, clipped gradients, AdamW."
    opt.zero_grad(set_to_none=True)
    loss = forward_backward(s, model, b)
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    return loss

def measure_steps(s: Suite, cfg, batch_size: int, finetune: str = 'full', steps: int | None = None) -> dict:
    "Build, warm up, count one step's FLOPs, time `steps` steps; peak VRAM over the whole; OOM -> status 'oom'."
    row = {'backbone': cfg.backbone, 'batch': batch_size, 'finetune': finetune, 'height': cfg.height}
    steps = steps or (1 if s.dry else s.a.steps)
    model = opt = b = None
    try:
        s.free()
        model = s.model(cfg, finetune)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.95))
        b = s.page_batch(cfg, model.backbone.multiple, batch_size)
        row.update(width=int(b['images'].shape[-1]), seq_len=int(b['ids'].shape[1]), label_tokens=int((b['ids'] != s.tok.pad_id).sum()),
                   params=sum(p.numel() for p in model.parameters()), trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
        train_step(s, model, opt, b)                                   # warm-up: kernels chosen, optimizer state made
        with flop_counter() as fc: train_step(s, model, opt, b)
        counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
        row.update(flops_per_step=int(fc.get_total_flops()), encoder_flops_per_step=int(counts.get('MusicTrOCR.backbone', 0)))
        s.sync(); t = time.perf_counter()
        for _ in range(steps): train_step(s, model, opt, b)
        s.sync(); dt = (time.perf_counter() - t) / steps
        row.update(status='ok', step_s=dt, samples_per_s=batch_size / dt, tokens_per_s=row['label_tokens'] / dt, timed_steps=steps,
                   peak_vram_bytes=s.peak_bytes(), mfu=row['flops_per_step'] / dt / s.peak if s.peak else None)
    except torch.cuda.OutOfMemoryError as e:   # (torch.OutOfMemoryError is the same class)
        row.update(status='oom', error=str(e).splitlines()[0][:200], peak_vram_bytes=s.peak_bytes())
    except Exception as e:   # one configuration failing must not lose the others
        row.update(status='failed', error=error_line(e))
    finally:
        del model, opt, b
        s.free()
    return row

def stage_train_step(s: Suite) -> list[dict]:
    rows, deadline = [], s.left() * s.a.share_train
    t = time.monotonic()
    for bb in BACKBONES:
        for B in s.batches:
            if time.monotonic() - t > deadline: rows.append({'backbone': bb, 'batch': B, 'status': 'skipped', 'error': 'time budget'}); continue
            rows.append(measure_steps(s, s.config(bb), B))
            r = rows[-1]
            print(f'  {bb:16s} B={B:<3d} {r["status"]:7s} ' + (f'{r["samples_per_s"]:7.1f} samples/s {r["tokens_per_s"]:9.0f} tok/s '
                  f'peak {(r["peak_vram_bytes"] or 0) / 2**30:6.2f} GiB MFU {r["mfu"] or 0:.2f}' if r['status'] == 'ok' else r.get('error', '')), flush=True)
            if r['status'] == 'oom': break   # a larger micro-batch will not fit either
    return rows

def estimator_rows(measured: list[dict], config, precision: str, vocab_size: int, device: str, dry: bool = False) -> list[dict]:
    "Section 6's estimate (meta-device pass, nothing allocated) at each measured shape, beside the measured peak."
    from omr_blog.memory import estimate_memory
    rows = []
    for r in measured:
        if r.get('status') != 'ok' or (r.get('peak_vram_bytes') is None and not dry): continue   # (a CPU rehearsal has no peak)
        e = estimate_memory(config(r['backbone']), batch_size=r['batch'], width=r['width'], seq_len=r['seq_len'],   # the padded batch, as measured
                            precision=precision, vocab_size=vocab_size, device=device)
        rows.append({'backbone': r['backbone'], 'batch': r['batch'], 'width': r['width'], 'seq_len': r['seq_len'], 'estimate_bytes': e.total,
                     'estimate_parts': asdict(e), 'measured_bytes': r.get('peak_vram_bytes'),
                     'ratio': r['peak_vram_bytes'] / e.total if r.get('peak_vram_bytes') else None})
    return rows

def stage_estimator(s: Suite, measured: list[dict]) -> list[dict]:
    return estimator_rows(measured, s.config, 'bf16' if s.amp == torch.bfloat16 else 'fp32', len(s.tok), s.device.type, s.dry)

def estimate(a):
    """The estimator stage again, here, from a GPU run's training-step record: the estimate is a meta-device pass that
    needs no GPU, so a new estimator is checked against peaks already measured. The record keeps the measurement's
    provenance (the GPU's) and adds the estimate's own (this machine, this commit)."""
    from omr_blog.config import make_config
    from omr_blog.core import provenance, write_json
    from omr_blog.memory import ESTIMATOR_VERSION
    from omr_blog.tokenizer import AbcTokenizer
    src = Path(a.src)
    rec = json.loads((src/'train_step.json').read_text())
    if rec.get('dry_run') or not rec.get('gpu'): sys.exit(f'{src}/train_step.json: a rehearsal on the CPU, not a GPU record')
    rows = estimator_rows(rec['rows'], lambda bb: make_config('gpu-full', bb, pretrained=False),
                          'bf16' if rec['precision'] == 'bfloat16' else 'fp32', len(AbcTokenizer.load(Path(a.data)/'tokenizer')), 'cuda')
    path = write_json(src/'estimator.json', {'stage': 'estimator', 'gpu': rec['gpu'], 'dry_run': False, 'precision': rec['precision'],
                                             'rows': rows, 'status': 'ok', 'error': None, 'estimator_version': ESTIMATOR_VERSION,
                                             'data': rec['data'], 'provenance': rec['provenance'], 'estimated': provenance()})
    print(f'{path}: {len(rows)} estimates beside the peaks measured on {rec["gpu"]}')

def stage_decoding(s: Suite) -> list[dict]:
    "Ours (eager cache, CUDA graph; beam) vs transformers' generate at equal dims, batch 1 and 16; training step vs theirs."
    from vs_transformers import build_hf, build_ours, interleaved
    from omr_blog.decoding import beam_search, greedy_decode, static_greedy_decode
    dims = dict(vocab=len(s.tok), d=64, layers=2, heads=4, max_len=64) if s.dry else dict(vocab=len(s.tok))
    N = 8 if s.dry else s.a.new_tokens
    half = torch.bfloat16 if s.device.type == 'cuda' else None       # decoding in bf16 weights on the GPU, both sides
    models = {'ours': build_ours(128 if s.dry else 2048, **dims), 'transformers': build_hf(ff=128 if s.dry else 2048, **dims)}
    for m in models.values(): m.to(s.device, half).eval()
    rows = []
    for B in ([1, 2] if s.dry else [1, 16]):
        imgs = torch.rand(B, 3, 224, 224, device=s.device, dtype=half or torch.float32); pm = torch.ones(B, 224, 224, dtype=torch.bool, device=s.device)
        def timed(f):
            def run():
                with torch.no_grad(): out = f()
                s.sync(); return out
            return run
        fns = {'ours: KV cache': timed(lambda: greedy_decode(models['ours'], imgs, pm, max_new_tokens=N, stop_at_eos=False)),
               'ours: CUDA graph' if s.device.type == 'cuda' else 'ours: static cache': timed(
                   lambda: static_greedy_decode(models['ours'], imgs, pm, max_new_tokens=N, stop_at_eos=False)),
               'transformers': timed(lambda: models['transformers'].generate(pixel_values=imgs * 2 - 1, max_new_tokens=N, min_new_tokens=N,
                                                                             do_sample=False, num_beams=1))}
        for f in fns.values(): assert f().shape == (B, N + 1)       # every side writes exactly N tokens
        t = interleaved(fns, s.a.repeat)
        for k, v in t.items():
            rows.append({'what': 'greedy', 'impl': k, 'batch': B, 'new_tokens': N, 'seconds': v, 'tokens_per_s': B * N / v,
                         'vs_transformers': t['transformers'] / v})
        # Random weights end the sides at different lengths, and each returns its best sequence, which can be shorter than
        # the search: so count the steps each ran (ours: decoder calls; theirs: calls of a logits processor) and compare per step.
        steps = {'ours': 0, 'transformers': 0}
        def count(k):
            def hook(*_): steps[k] += 1
            return hook
        hook = models['ours'].decoder.register_forward_hook(count('ours'))
        from transformers import LogitsProcessorList
        beams = {'ours': timed(lambda: beam_search(models['ours'], imgs, pm, beam=4, max_new_tokens=N)),
                 'transformers': timed(lambda: models['transformers'].generate(
                     pixel_values=imgs * 2 - 1, max_new_tokens=N, do_sample=False, num_beams=4, early_stopping=True,
                     logits_processor=LogitsProcessorList([lambda ids, scores: (count('transformers')(), scores)[1]])))}
        outs = {}
        def keep(k, f):
            def run(): steps[k] = 0; outs[k] = f()
            return run
        t = interleaved({k: keep(k, f) for k, f in beams.items()}, 1)   # a warm-up and one timed call each: beams are long
        hook.remove()
        per_step = {k: t[k] / max(1, steps[k]) for k in t}
        for k, v in t.items():
            rows.append({'what': 'beam4', 'impl': k, 'batch': B, 'steps': steps[k], 'new_tokens': int(outs[k].shape[1] - 1), 'seconds': v,
                         'tokens_per_s': B / per_step[k], 'vs_transformers': per_step['transformers'] / per_step[k]})
    # the training step at equal dims (bf16 autocast, fp32 weights: as training runs)
    for m in models.values(): m.to(s.device, torch.float32).train()
    B, T = (2, 16) if s.dry else (16, 256)
    imgs = torch.rand(B, 3, 224, 224, device=s.device); pm = torch.ones(B, 224, 224, dtype=torch.bool, device=s.device)
    ids = torch.randint(3, len(s.tok), (B, T), device=s.device); ids[:, 0] = s.tok.bos_id
    def step(name, m):
        def run():
            m.zero_grad(set_to_none=True)
            with torch.autocast(s.device.type, dtype=s.amp, enabled=s.amp is not None):
                loss = (m(pixel_values=imgs * 2 - 1, decoder_input_ids=ids[:, :-1], labels=ids[:, 1:]).loss if name == 'transformers'
                        else m.loss(imgs, pm, ids))
            loss.backward(); s.sync()
        return run
    t = interleaved({k: step(k, m) for k, m in models.items()}, s.a.repeat)
    for k, v in t.items():
        rows.append({'what': 'train_step', 'impl': k, 'batch': B, 'seq': T, 'seconds': v, 'samples_per_s': B / v, 'vs_transformers': t['transformers'] / v})
    models.clear(); s.free()
    return rows

def stage_finetune(s: Suite) -> list[dict]:
    "Full fine-tuning, LoRA and QLoRA (nf4) of two backbones on pages at one micro-batch: step time and peak VRAM."
    rows = []
    for bb in s.a.finetune_backbones:
        for mode in ('full', 'lora', 'qlora'):
            rows.append(measure_steps(s, s.config(bb), s.a.finetune_batch if not s.dry else 1, finetune=mode))
            r = rows[-1]
            print(f'  {bb:16s} {mode:5s} {r["status"]:7s} ' + (f'{r["step_s"] * 1e3:7.1f} ms/step peak {(r["peak_vram_bytes"] or 0) / 2**30:6.2f} GiB'
                  if r['status'] == 'ok' else r.get('error', '')), flush=True)
    return rows

def stage_strips(s: Suite) -> list[dict]:
    "The CPU sweep's recipe (cpu-short) on the GPU, each backbone given an equal share of the time left: GPU loss curves."
    from omr_blog.config import make_config
    from omr_blog.core import read_jsonl
    from omr_blog.train import flat_record, train
    rows, share = [], max(s.left(), 0) / len(BACKBONES)
    for bb in BACKBONES:
        over = dict(max_steps=3, eval_samples=4, time_budget_s=None) if s.dry else dict(time_budget_s=share * 0.7, eval_samples=s.a.n_eval)
        cfg = make_config('cpu-short', bb, dataset=str(s.data/'strips'), out_dir=str(s.scratch/bb), wandb=False, omr_ned_samples=0, **over)
        try:
            r = train(cfg, resume=False, progress=False)
            rows.append({**flat_record(r), 'curve': [{k: x[k] for k in ('step', 'loss', 'elapsed_s')} for x in read_jsonl(s.scratch/bb/'log.jsonl')]})
        except Exception as e:
            rows.append({'backbone': bb, 'status': 'failed', 'error': error_line(e)})
        print(f'  {bb:16s} {rows[-1]["status"]} {rows[-1].get("steps", "")} steps', flush=True)
    return rows

def plan(a):
    """Expected runtime on one GPU from the suite's own step counts: FLOPs counted on the meta device (nothing runs), a
    sustained share of the peak rate (`--mfu`), and a fixed cost per configuration (model build, first-step kernels)."""
    from unittest import mock
    import torch.nn.functional as F
    from omr_blog.memory import _fused_sdpa_on_meta
    a.dry_run, a.batches = True, a.batches or [4, 8, 16]       # (the Suite reads the data; the sizes below are the GPU's)
    s = Suite(a); s.dry = False
    peak = peak_bf16_flops(a.gpu) or 989e12
    total_s, rows = 0.0, []
    configs = [(bb, B, 'full') for bb in BACKBONES for B in a.batches] + [(bb, a.finetune_batch, m) for bb in a.finetune_backbones
                                                                        for m in ('full', 'lora', 'qlora')]
    for bb, B, mode in configs:
        cfg = s.config(bb)
        with torch.device('meta'): m = s.build(cfg, 'lora' if mode == 'qlora' else mode)   # (4-bit weights need a real device)
        b = {k: v.to('meta') for k, v in s.page_batch(cfg, m.backbone.multiple, B).items()}
        with mock.patch.object(F, 'scaled_dot_product_attention', _fused_sdpa_on_meta), flop_counter() as fc:
            forward_backward(s, m, b)
        steps = 2 + a.steps                                           # warm-up, counted, timed
        sec = steps * fc.get_total_flops() / (peak * a.mfu) + a.overhead_s
        total_s += sec
        rows.append((bb, B, mode, fc.get_total_flops() / 1e12, steps, sec))
        print(f'  {bb:16s} B={B:<3d} {mode:5s} {rows[-1][3]:6.2f} TFLOP/step x {steps} steps -> {sec:5.1f} s', flush=True)
    dec_calls = 2 * 3 * (1 + a.repeat)                                # batch 1 and 16; three greedy sides; warm-up + repeats
    dec_s = dec_calls * a.new_tokens * a.token_ms / 1e3 + 2 * 2 * a.new_tokens * a.token_ms * 2 / 1e3   # + beams (2 sides, 2 batches)
    total_s += dec_s
    print(f'stages 1 and 4: {len(configs)} configurations, {sum(r[4] for r in rows)} training steps, '
          f'{sum(r[3] * r[4] for r in rows):.0f} TFLOP; decoding: {dec_calls} greedy calls of {a.new_tokens} tokens ~{dec_s:.0f} s '
          f'(at {a.token_ms} ms per token step)')
    print(f'expected on one {a.gpu} at {a.mfu:.0%} of {peak / 1e12:.0f} TFLOP/s + {a.overhead_s:.0f} s per configuration: '
          f'stages 1-4 ~{total_s / 60:.1f} min; stage 5 then trains on the strips for the rest of the {a.budget_s:.0f} s budget')

def recount(a):
    """Correct the FLOPs of GPU records counted with torch's convolution-backward formula (`conv_backward_flops` says why):
    each row's convolution backward is counted again on the meta device, with torch's formula and the right one, and the
    difference comes off the recorded totals (convolution FLOPs depend on shapes alone; the rest of the count stays as
    measured). MFU follows. The torch counts stay in the rows, beside the corrected ones."""
    import argparse
    from unittest import mock
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode
    from omr_blog.core import provenance, write_json
    from omr_blog.memory import _fused_sdpa_on_meta
    s = Suite(argparse.Namespace(dry_run=True, batches=None, data=a.data, out=str(Path(a.src)/'.recount'), budget_s=1e9)); s.dry = False
    shutil.rmtree(s.scratch, ignore_errors=True); shutil.rmtree(s.out, ignore_errors=True)
    conv_bwd = torch.ops.aten.convolution_backward
    for stage in ('train_step', 'finetune'):
        path = Path(a.src)/f'{stage}.json'
        if not path.exists(): continue
        rec = json.loads(path.read_text())
        if rec.get('dry_run') or not rec.get('gpu'): sys.exit(f'{path}: a rehearsal on the CPU, not a GPU record')
        if rec.get('flops_recounted'): print(f'{path}: already recounted'); continue
        for r in rec['rows']:
            if r.get('status') != 'ok' or not r.get('flops_per_step'): continue
            cfg = s.config(r['backbone'])
            with torch.device('meta'): m = s.build(cfg, 'lora' if r.get('finetune') == 'qlora' else r.get('finetune', 'full'))
            b = {k: v.to('meta') for k, v in s.page_batch(cfg, m.backbone.multiple, r['batch']).items()}
            if (b['images'].shape[-1], b['ids'].shape[1]) != (r['width'], r['seq_len']): sys.exit(f'{path}: the carried pages are not the ones measured')
            counts = []
            for counter in (FlopCounterMode(display=False), flop_counter()):
                with mock.patch.object(F, 'scaled_dot_product_attention', _fused_sdpa_on_meta), counter as fc: forward_backward(s, m, b)
                c = fc.get_flop_counts()
                counts.append((c['Global'].get(conv_bwd, 0), c.get('MusicTrOCR.backbone', {}).get(conv_bwd, 0)))
            over, over_enc = counts[0][0] - counts[1][0], counts[0][1] - counts[1][1]
            r.update(flops_per_step_torch=r['flops_per_step'], encoder_flops_per_step_torch=r['encoder_flops_per_step'],
                     flops_per_step=r['flops_per_step'] - over, encoder_flops_per_step=r['encoder_flops_per_step'] - over_enc)
            if r.get('mfu') is not None: r.update(mfu_torch=r['mfu'], mfu=r['mfu'] * r['flops_per_step'] / r['flops_per_step_torch'])
            print(f'  {stage} {r["backbone"]:16s} B={r["batch"]:<3d} {r.get("finetune", "full"):5s} encoder '
                  f'{r["encoder_flops_per_step_torch"] / 1e12:7.2f} -> {r["encoder_flops_per_step"] / 1e12:7.2f} TFLOP/step', flush=True)
        rec['flops_recounted'] = {'why': 'torch counted a grouped convolution backward groups times over (pytorch/pytorch#183405)',
                                  'provenance': provenance()}
        write_json(path, rec)

def gpu_slug(name: str) -> str: return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')   # 'NVIDIA H200' -> 'nvidia-h200'

def collect(a):
    "Commit-ready: copy a GPU run's records into results/<gpu-name>/suite/ (a dry run or a CPU record is refused)."
    recs = {p: json.loads(p.read_text()) for p in sorted(Path(a.src).glob('*.json')) if p.stem in STAGES}
    if not recs: sys.exit(f'{a.src}: no suite records there')
    for p, r in recs.items():
        if r.get('dry_run') or not r.get('gpu'): sys.exit(f'{p}: a rehearsal on the CPU, not a GPU record')
        dest = ROOT/'results'/gpu_slug(r['gpu'])/'suite'/p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
        print(f'{dest.relative_to(ROOT)}: {r["status"]}, {len(r["rows"])} rows ({r["gpu"]})')

def run(a):
    torch.set_flush_denormal(True)
    s = Suite(a)
    print(f'gpu suite on {s.gpu or "the CPU (dry run)"}, {s.amp or "fp32"}: budget {a.budget_s:.0f} s, stages {", ".join(a.stages)}', flush=True)
    measured: list[dict] = []
    for stage in a.stages:
        if s.left() <= 0: s.write(stage, [], status='skipped', error='time budget'); continue
        t = time.monotonic()
        try:
            rows = {'train_step': lambda: stage_train_step(s), 'estimator': lambda: stage_estimator(s, measured),
                    'decoding': lambda: stage_decoding(s), 'finetune': lambda: stage_finetune(s), 'strips': lambda: stage_strips(s)}[stage]()
            status, error = 'ok', None
        except Exception as e:   # the next stage still runs; this one says why it has no rows
            rows, status, error = [], 'failed', error_line(e, 300)
            print(f'  {stage} failed: {error}', flush=True)
        if stage == 'train_step': measured = rows
        from omr_blog.memory import ESTIMATOR_VERSION   # an estimator record's ratios hold for the estimator that wrote them
        extra = {'estimator_version': ESTIMATOR_VERSION} if stage == 'estimator' else {}
        s.write(stage, rows, status=status, error=error, seconds=round(time.monotonic() - t, 1), **extra)
    shutil.rmtree(s.scratch, ignore_errors=True)
    print(f'done in {time.monotonic() - s.t0:.0f} s: records in {s.out}')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('prep', help='fill the carry folder (here, on the CPU machine)')
    p.add_argument('--out', default=str(ROOT/'.gpu'))
    p.add_argument('--strips', default='omr-synth-cpu-short', help='the sweep dataset whose strips and tokenizers travel')
    p.add_argument('--pages', default=None, help='a built pages dataset (default: build omr-synth-gpu-pages)')
    p.add_argument('--n-pages', type=int, default=32)
    p.add_argument('--page-height', type=int, default=1024)
    p.add_argument('--n-strips', type=int, default=4000, help='training strips that travel (stage 5)')
    p.add_argument('--n-eval', type=int, default=100, help='val and test strips that travel')
    p.add_argument('--strip-height', type=int, default=48)
    p.add_argument('--strip-vocab', type=int, default=512)
    p.add_argument('--no-wheels', action='store_true', help='skip the wheels (tests)')
    p.add_argument('--allow-dirty', action='store_true', help='prepare from a tree with uncommitted changes (a rehearsal)')
    c = argparse.ArgumentParser(add_help=False)   # what `run` measures and `plan` counts
    c.add_argument('--out', default=os.environ.get('OUT') or str(ROOT/'runs'/'gpu-suite'))
    c.add_argument('--data', default=str(ROOT/'.gpu'))
    c.add_argument('--budget-s', type=float, default=450.0, help='wall-clock budget; later stages are skipped when it runs out')
    c.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    c.add_argument('--batches', type=int, nargs='+', default=None, help='micro-batches of stage 1 (default 4 8 16)')
    c.add_argument('--steps', type=int, default=5, help='timed steps per configuration')
    c.add_argument('--share-train', type=float, default=0.45, help='share of the budget stage 1 may use')
    c.add_argument('--new-tokens', type=int, default=512)
    c.add_argument('--repeat', type=int, default=3)
    c.add_argument('--finetune-backbones', nargs='*', default=['vit_small', 'convnext_tiny'])
    c.add_argument('--finetune-batch', type=int, default=8)
    c.add_argument('--n-eval', type=int, default=100)
    r = sub.add_parser('run', help='run the suite (on the GPU; --dry-run on the CPU)', parents=[c])
    r.add_argument('--dry-run', action='store_true', help='tiny sizes on the CPU: the same code paths in seconds')
    q = sub.add_parser('plan', help="expected runtime from the suite's own step counts (meta-device FLOPs; nothing runs)",
                       parents=[c])
    q.add_argument('--gpu', default='NVIDIA H100 80GB HBM3')
    q.add_argument('--mfu', type=float, default=0.3, help='sustained share of the peak bf16 rate')
    q.add_argument('--overhead-s', type=float, default=4.0, help='per configuration: model build, FLOP counting, first kernels')
    q.add_argument('--token-ms', type=float, default=3.0, help='one decoding step of the 6x512 decoder (launch-bound at small batch)')
    e = sub.add_parser('estimate', help="the estimator stage again, here, against a GPU run's measured peaks (FOLDER/train_step.json)")
    e.add_argument('src', help='the folder the run wrote (its --out)')
    e.add_argument('--data', default=str(ROOT/'.gpu'), help='the carry folder (its tokenizer gives the vocabulary size)')
    f = sub.add_parser('recount', help="correct the FLOPs and MFU of a GPU run's records counted with torch's conv-backward formula")
    f.add_argument('src', help='a folder of suite records (results/<gpu>/suite or a run\'s --out)')
    f.add_argument('--data', default=str(ROOT/'.gpu'), help='the carry folder the run read (its pages give the shapes)')
    k = sub.add_parser('collect', help='copy a GPU run\'s records into results/<gpu-name>/suite/ (to commit them)')
    k.add_argument('src', help='the folder the run wrote (its --out)')
    a = ap.parse_args(argv)
    {'prep': prep, 'run': run, 'plan': plan, 'collect': collect, 'estimate': estimate, 'recount': recount}[a.cmd](a)

if __name__ == '__main__': main()
