"""KV-cached vs recompute greedy decoding with the post's full decoder (6 layers, d_model 512, 8 heads, SwiGLU 2048)
on CPU, measured side by side in one run. Target (issue 3): >= 8x at 1024 new tokens.

    .venv/bin/python benchmarks/kv_cache.py [--lengths 256 512 1024] [--threads 2]
"""
import argparse, time
import torch
from omr_blog.decoding import greedy_decode
from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lengths', type=int, nargs='+', default=[256, 512, 1024])
    ap.add_argument('--backbone', default='convnext_tiny', help='encoder (tiny variant): only its 128 image tokens matter here')
    ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = MusicTrOCR(ModelConfig(a.backbone, 'tiny', decoder=DecoderConfig(dropout=0.0))).eval()   # the full 6x512 decoder
    imgs, pm = torch.rand(1, 3, 64, 512), torch.ones(1, 64, 512, dtype=torch.bool)
    with torch.no_grad(): memory = m.encode(imgs, pm)
    print(f'decoder: {sum(p.numel() for p in m.decoder.parameters())/1e6:.1f}M params, {memory[0].shape[1]} image tokens, '
          f'{torch.get_num_threads()} threads')
    for n in a.lengths:
        times = {}
        for cached in (True, False):
            t = time.perf_counter()
            out = greedy_decode(m, None, None, max_new_tokens=n, use_cache=cached, memory=memory, stop_at_eos=False)
            times[cached] = time.perf_counter() - t
            assert out.shape[1] == n + 1
        print(f'{n:5d} new tokens: cached {n / times[True]:7.1f} tok/s, recompute {n / times[False]:7.1f} tok/s, '
              f'speed-up {times[False] / times[True]:5.1f}x')

if __name__ == '__main__': main()
