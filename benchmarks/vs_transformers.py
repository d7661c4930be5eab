"""MusicTrOCR against `transformers`' VisionEncoderDecoderModel at equal dimensions, side by side in one run:
the same ViT-Small encoder, and a TrOCR decoder with the post's width/depth/heads/FFN (512, 6 layers, 8 heads,
2048). Note ours uses SwiGLU (three FFN matrices, TrOCR's GELU has two): ours does more FFN work per token.

* greedy decoding tokens/s, both forced to the same number of new tokens (target >= 1.5x),
* a training step (forward + backward) samples/s (target >= 1.2x).

    .venv/bin/python benchmarks/vs_transformers.py [--new-tokens 256] [--batch 4] [--seq 256]
"""
import argparse, time
import torch

def build(vocab=4096, d=512, layers=6, heads=8, ff=2048, max_len=2048):
    from transformers import TrOCRConfig, TrOCRForCausalLM, VisionEncoderDecoderModel, ViTModel
    from omr_blog.backbones import backbone_config
    from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR
    torch.manual_seed(0)
    ours = MusicTrOCR(ModelConfig('vit_small', 'full', decoder=DecoderConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads,
                                                                              d_ff=ff, max_len=max_len, dropout=0.1)))
    dec = TrOCRForCausalLM(TrOCRConfig(vocab_size=vocab, d_model=d, decoder_layers=layers, decoder_attention_heads=heads,
                                       decoder_ffn_dim=ff, max_position_embeddings=max_len, dropout=0.1, pad_token_id=0,
                                       bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, cross_attention_hidden_size=384,
                                       is_decoder=True, add_cross_attention=True, tie_word_embeddings=False))
    hf = VisionEncoderDecoderModel(encoder=ViTModel(backbone_config('vit_small', 'full'), add_pooling_layer=False), decoder=dec)
    hf.config.decoder_start_token_id, hf.config.pad_token_id, hf.config.eos_token_id = 1, 0, 2
    return ours, hf

def timed(fn, repeat):
    fn()   # warm-up
    t = time.perf_counter()
    for _ in range(repeat): fn()
    return (time.perf_counter() - t) / repeat

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--new-tokens', type=int, default=256)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seq', type=int, default=256, help='label length in the training step')
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    from omr_blog.decoding import greedy_decode
    ours, hf = build()
    n_ours = sum(p.numel() for p in ours.decoder.parameters()); n_hf = sum(p.numel() for p in hf.decoder.parameters())
    print(f'decoders: ours {n_ours/1e6:.1f}M params (SwiGLU), TrOCR {n_hf/1e6:.1f}M params (GELU); encoder ViT-Small; '
          f'{torch.get_num_threads()} threads')
    imgs = torch.rand(a.batch, 3, 224, 224); pm = torch.ones(a.batch, 224, 224, dtype=torch.bool)
    ours.eval(); hf.eval()
    N = a.new_tokens
    def ours_gen():
        out = greedy_decode(ours, imgs, pm, max_new_tokens=N, stop_at_eos=False); assert out.shape[1] == N + 1
    def hf_gen():
        with torch.no_grad():
            out = hf.generate(pixel_values=imgs * 2 - 1, max_new_tokens=N, min_new_tokens=N, do_sample=False, num_beams=1)
        assert out.shape[1] == N + 1
    t_ours, t_hf = timed(ours_gen, a.repeat), timed(hf_gen, a.repeat)
    print(f'greedy, {N} new tokens x batch {a.batch}: ours {a.batch * N / t_ours:7.1f} tok/s, transformers {a.batch * N / t_hf:7.1f} tok/s, '
          f'ratio {t_hf / t_ours:.2f}x (target >= 1.5x)')
    ours.train(); hf.train()
    ids = torch.randint(3, 4096, (a.batch, a.seq)); ids[:, 0] = 1
    def ours_step():
        ours.zero_grad(set_to_none=True); ours.loss(imgs, pm, ids).backward()
    def hf_step():
        hf.zero_grad(set_to_none=True)
        hf(pixel_values=imgs * 2 - 1, decoder_input_ids=ids[:, :-1], labels=ids[:, 1:]).loss.backward()
    t_ours, t_hf = timed(ours_step, a.repeat), timed(hf_step, a.repeat)
    print(f'training step, batch {a.batch} x {a.seq} tokens: ours {a.batch / t_ours:6.2f} samples/s, transformers {a.batch / t_hf:6.2f} samples/s, '
          f'ratio {t_hf / t_ours:.2f}x (target >= 1.2x)')

if __name__ == '__main__': main()
