"""MusicTrOCR against `transformers`' VisionEncoderDecoderModel, side by side in one run: the same ViT-Small encoder
and a TrOCR decoder with the post's width/depth/heads/FFN (512, 6 layers, 8 heads, 2048), dropout as TrOCR's
defaults (0.1 on hidden states, none on attention weights: ours with `attn_dropout=0`).

Ours is measured twice:
* equal dimensions: SwiGLU 512 -> 2048 -> 512 has three matrices where TrOCR's GELU has two, so ours does 1.5x the
  feed-forward work and reads 1.24x the decoder weights per token;
* equal FLOPs: SwiGLU with d_ff 1365 (2/3 of 2048, LLaMA's rule) has TrOCR's feed-forward cost.

Measured: greedy decoding tokens/s, both forced to the same number of new tokens (target >= 1.5x), and a training
step (forward + backward) samples/s (target >= 1.2x). Timings are interleaved (ours, theirs, ours, ...) and the
median of `--repeat` is kept, so drift on a shared machine hits both sides alike.

    .venv/bin/python benchmarks/vs_transformers.py [--new-tokens 256] [--batch 4] [--seq 256] [--repeat 3]
"""
import argparse, statistics, time
import torch

def build_ours(d_ff, vocab=4096, d=512, layers=6, heads=8, max_len=2048):
    from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR
    torch.manual_seed(0)
    return MusicTrOCR(ModelConfig('vit_small', 'full', decoder=DecoderConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads,
                                                                             d_ff=d_ff, max_len=max_len, dropout=0.1, attn_dropout=0.0)))

def build_hf(vocab=4096, d=512, layers=6, heads=8, ff=2048, max_len=2048):
    from transformers import TrOCRConfig, TrOCRForCausalLM, VisionEncoderDecoderModel, ViTModel
    from omr_blog.backbones import backbone_config
    torch.manual_seed(0)
    dec = TrOCRForCausalLM(TrOCRConfig(vocab_size=vocab, d_model=d, decoder_layers=layers, decoder_attention_heads=heads,
                                       decoder_ffn_dim=ff, max_position_embeddings=max_len, dropout=0.1, attention_dropout=0.0,
                                       pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                                       cross_attention_hidden_size=384, is_decoder=True, add_cross_attention=True, tie_word_embeddings=False))
    hf = VisionEncoderDecoderModel(encoder=ViTModel(backbone_config('vit_small', 'full'), add_pooling_layer=False), decoder=dec)
    hf.config.decoder_start_token_id, hf.config.pad_token_id, hf.config.eos_token_id = 1, 0, 2
    return hf

def interleaved(fns: dict, repeat: int) -> dict:
    "Median seconds per call of each function, calls interleaved round by round after one warm-up each."
    for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}

def print_ratios(t: dict, what: str, per_call: float, unit: str, target: float):
    "One line per variant of ours: its rate, transformers' rate, and their ratio (> 1: ours is faster)."
    hf = t['transformers']
    for k in (k for k in t if k != 'transformers'):
        print(f'{what}: {k} {per_call / t[k]:7.2f} {unit}, transformers {per_call / hf:7.2f} {unit}, '
              f'ratio {hf / t[k]:.2f}x (target >= {target}x)')

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--new-tokens', type=int, default=256)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seq', type=int, default=256, help='label length in the training step')
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    from omr_blog.decoding import greedy_decode
    models = {'ours (equal dims)': build_ours(2048), 'ours (equal FLOPs)': build_ours(1365), 'transformers': build_hf()}
    for name, m in models.items():
        print(f'{name:19s} decoder {sum(p.numel() for p in m.decoder.parameters()) / 1e6:5.1f}M params')
    print(f'encoder ViT-Small; {torch.get_num_threads()} threads')
    imgs = torch.rand(a.batch, 3, 224, 224); pm = torch.ones(a.batch, 224, 224, dtype=torch.bool)
    N = a.new_tokens

    def generate(name, m):
        def run():
            if name == 'transformers':
                with torch.no_grad():
                    out = m.generate(pixel_values=imgs * 2 - 1, max_new_tokens=N, min_new_tokens=N, do_sample=False, num_beams=1)
            else: out = greedy_decode(m, imgs, pm, max_new_tokens=N, stop_at_eos=False)
            assert out.shape[1] == N + 1
        return run
    for m in models.values(): m.eval()
    t = interleaved({k: generate(k, m) for k, m in models.items()}, a.repeat)
    print_ratios(t, f'greedy, {N} new tokens x batch {a.batch}', a.batch * N, 'tok/s', 1.5)
    # At small batch every step streams all decoder weights from memory: weight bytes / step time says whether a gap is
    # implementation (different GB/s) or model size (same GB/s, more bytes). The encoder's one pass is included in t.
    for k, m in models.items():
        gb = sum(p.numel() * p.element_size() for p in m.decoder.parameters()) / 1e9
        print(f'  {k:19s} {gb * 1e3:5.0f} MB of decoder weights per step, {t[k] / N * 1e3:5.1f} ms per step, {gb * N / t[k]:4.1f} GB/s')

    ids = torch.randint(3, 4096, (a.batch, a.seq)); ids[:, 0] = 1
    def step(name, m):
        def run():
            m.zero_grad(set_to_none=True)
            if name == 'transformers': m(pixel_values=imgs * 2 - 1, decoder_input_ids=ids[:, :-1], labels=ids[:, 1:]).loss.backward()
            else: m.loss(imgs, pm, ids).backward()
        return run
    for m in models.values(): m.train()
    t = interleaved({k: step(k, m) for k, m in models.items()}, a.repeat)
    print_ratios(t, f'training step, batch {a.batch} x {a.seq} tokens', a.batch, 'samples/s', 1.2)

if __name__ == '__main__': main()
