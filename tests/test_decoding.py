import pytest
import torch
import torch.nn.functional as F
from omr_blog.decoding import _limit, apply_repetition_penalty, beam_search, greedy_decode
from omr_blog.model import Decoder, DecoderConfig, ModelConfig, MusicTrOCR

def _model(seed=0, backbone='resnet50'):
    torch.manual_seed(seed)
    return MusicTrOCR(ModelConfig(backbone, 'tiny', decoder=DecoderConfig(vocab_size=40, d_model=64, n_layers=2, n_heads=4,
                                                                             d_ff=128, max_len=48, dropout=0.0))).eval()

def _batch():
    torch.manual_seed(1)
    imgs = torch.rand(3, 3, 64, 240); pm = torch.ones(3, 64, 240, dtype=torch.bool); pm[1, :, 100:] = False
    return imgs, pm

def test_cached_logits_equal_recomputed_step_by_step():
    m = _model(); imgs, pm = _batch()
    with torch.no_grad():
        mem, mask = m.encode(imgs, pm)
        ids = torch.randint(3, 40, (3, 16)); ids[:, 0] = 1
        cache = m.decoder.new_cache()
        for t in range(16):
            step = m.decoder(ids[:, t:t + 1], mem, mask, cache, start=t)[:, 0]
            again = m.decoder(ids[:, :t + 1], mem, mask)[:, -1]
            assert torch.allclose(step, again, atol=1e-5), t

def test_padded_batch_item_equals_item_alone():
    dec = Decoder(DecoderConfig(vocab_size=40, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_len=48, dropout=0.0)).eval()
    torch.manual_seed(2)
    mem = torch.randn(3, 25, 64); mask = torch.ones(3, 25, dtype=torch.bool); mask[0, 11:] = False; mask[2, 20:] = False
    ids = torch.randint(3, 40, (3, 12))
    with torch.no_grad():
        batch = dec(ids, mem, mask)
        for i, (n_mem, n_ids) in enumerate([(11, 5), (25, 12), (20, 9)]):
            alone = dec(ids[i:i + 1, :n_ids], mem[i:i + 1, :n_mem], mask[i:i + 1, :n_mem])
            assert torch.allclose(batch[i, :n_ids], alone[0], atol=1e-5)

def _overfit_two_labels():
    "A model trained until it writes a different-length label for each of two images."
    m = _model(3, 'convnext_tiny').train()
    imgs, pm = _batch(); imgs, pm = imgs[:2], pm[:2]
    labels = torch.tensor([[1, 5, 6, 7, 8, 9, 10, 2], [1, 11, 12, 2, 0, 0, 0, 0]])
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad(); loss = m.loss(imgs, pm, labels); loss.backward(); opt.step()
        if loss.item() < 0.01: break
    return m.eval(), imgs, pm, labels

def test_ragged_greedy_stops_per_sequence_and_cache_matches():
    m, imgs, pm, labels = _overfit_two_labels()
    out = greedy_decode(m, imgs, pm, max_new_tokens=20)
    assert out[0, :8].tolist() == labels[0].tolist()
    assert out[1, :4].tolist() == [1, 11, 12, 2] and (out[1, 4:] == 0).all()   # stopped at its own EOS, then pad
    assert out.shape[1] == 8                                                   # the batch stopped when all had
    assert torch.equal(out, greedy_decode(m, imgs, pm, max_new_tokens=20, use_cache=False))
    for k in (2, 4):
        b = beam_search(m, imgs, pm, beam=k, max_new_tokens=20)
        assert b[0, :8].tolist() == labels[0].tolist() and b[1, :4].tolist() == [1, 11, 12, 2]

def test_greedy_uncached_equals_cached_and_beam1_equals_greedy_on_random_models():
    for seed in range(3):
        m = _model(seed); imgs, pm = _batch()
        g = greedy_decode(m, imgs, pm, max_new_tokens=30)
        assert torch.equal(g, greedy_decode(m, imgs, pm, max_new_tokens=30, use_cache=False))
        assert torch.equal(beam_search(m, imgs, pm, beam=1, max_new_tokens=30), g)

def test_max_length_and_repetition_penalty():
    m = _model(); imgs, pm = _batch()
    assert greedy_decode(m, imgs, pm, max_new_tokens=5).shape[1] <= 6
    assert greedy_decode(m, imgs, pm).shape[1] <= m.cfg.decoder.max_len
    plain = greedy_decode(m, imgs, pm, max_new_tokens=30)
    pen = greedy_decode(m, imgs, pm, max_new_tokens=30, repetition_penalty=5.0)
    rep = lambda s: len(s) - len(set(s))
    assert sum(rep(r.tolist()) for r in pen) <= sum(rep(r.tolist()) for r in plain)

def test_kv_buffer_growth_keeps_cached_decoding_equal_to_recomputing():
    "Past 64 tokens the self-attention buffer is reallocated; greedy and beam search must not notice."
    torch.manual_seed(5)
    m = MusicTrOCR(ModelConfig('resnet50', 'tiny', decoder=DecoderConfig(vocab_size=40, d_model=64, n_layers=2, n_heads=4,
                                                                         d_ff=128, max_len=160, dropout=0.0))).eval()
    imgs, pm = _batch()
    g = greedy_decode(m, imgs, pm, max_new_tokens=80, stop_at_eos=False)
    assert g.shape[1] == 81 and torch.equal(g, greedy_decode(m, imgs, pm, max_new_tokens=80, stop_at_eos=False, use_cache=False))
    assert torch.equal(beam_search(m, imgs, pm, beam=1, max_new_tokens=80), greedy_decode(m, imgs, pm, max_new_tokens=80))

@pytest.mark.parametrize('backbone', ['resnet50', 'vit_small', 'swin_tiny'])
def test_static_cache_step_writes_what_greedy_writes(backbone):
    "The fixed-shape step that CUDA records as a graph (run eagerly here) equals the growing-cache greedy, row by row."
    from omr_blog.decoding import StaticGreedyDecoder, static_greedy_decode
    for seed in range(3):
        torch.manual_seed(seed)
        m = MusicTrOCR(ModelConfig(backbone, 'tiny', decoder=DecoderConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                                                                           max_len=80, dropout=0.0))).eval()
        imgs, pm = torch.rand(4, 3, 64, 224), torch.ones(4, 64, 224, dtype=torch.bool)
        pm[1, :, 96:] = False; pm[3, :, 160:] = False                       # ragged widths
        for n in (0, 1, 33, 79):   # a 12-token vocabulary ends rows at different steps (EOS) or never
            assert torch.equal(static_greedy_decode(m, imgs, pm, max_new_tokens=n), greedy_decode(m, imgs, pm, max_new_tokens=n)), (seed, n)
        dec = StaticGreedyDecoder(m, *m.encode(imgs, pm), 20)
        assert torch.equal(dec(), dec())                                    # reusable: every call starts from BOS

@torch.no_grad()
def reference_beam_search(model: MusicTrOCR, images, pixel_mask=None, beam: int = 4, max_new_tokens: int | None = None,
                length_penalty: float = 1.0, repetition_penalty: float = 1.0) -> torch.Tensor:
    "The plain per-image loop the vectorised beam_search replaced (it asked the host for every candidate at every step)."
    c = model.cfg.decoder
    mem, mmask = model.encode(images, pixel_mask)
    B, k, dev = mem.shape[0], beam, mem.device
    mem, mmask = mem.repeat_interleave(k, 0), mmask.repeat_interleave(k, 0)          # (B*k, N, C)
    ids = torch.full((B * k, 1), c.bos_id, dtype=torch.long, device=dev)
    scores = torch.zeros(B, k, device=dev); scores[:, 1:] = float('-inf')             # one live beam at first
    finished = [[] for _ in range(B)]                                                 # (normalised score, ids)
    done = [False] * B
    cache = model.decoder.new_cache()
    steps = _limit(model, max_new_tokens)
    for t in range(steps):
        logits = model.decoder(ids[:, -1:], mem, mmask, cache, start=t)[:, -1].float()
        logp = F.log_softmax(apply_repetition_penalty(logits, ids, repetition_penalty), -1)   # (B*k, V)
        V = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(B, k * V)
        top_s, top_i = cand.topk(2 * k, dim=1)                                         # (B, 2k)
        new_src, new_tok, new_scores = [], [], []
        for b in range(B):
            src, tok, sc = [], [], []
            for s, i in zip(top_s[b].tolist(), top_i[b].tolist()):
                bi, ti = divmod(i, V)
                if done[b]: src.append(b * k); tok.append(c.pad_id); sc.append(float('-inf'))
                elif ti == c.eos_id:
                    if len(finished[b]) < k or s / (t + 1) ** length_penalty > min(finished[b])[0]:
                        finished[b].append((s / (t + 1) ** length_penalty, ids[b * k + bi, 1:].tolist() + [ti]))
                        finished[b] = sorted(finished[b], key=lambda x: -x[0])[:k]
                    continue
                else: src.append(b * k + bi); tok.append(ti); sc.append(s)
                if len(src) == k: break
            while len(src) < k: src.append(b * k); tok.append(c.pad_id); sc.append(float('-inf'))
            if not done[b] and len(finished[b]) >= k:
                best_alive = max(sc)
                done[b] = min(f[0] for f in finished[b]) >= best_alive / (t + 1) ** length_penalty
            new_src += src; new_tok += tok; new_scores.append(sc)
        sel = torch.tensor(new_src, device=dev)
        ids = torch.cat([ids[sel], torch.tensor(new_tok, device=dev)[:, None]], 1)
        scores = torch.tensor(new_scores, device=dev)
        for layer in cache:   # follow the surviving beams; cross-attention K/V are the same for all beams of an image
            layer['self']['k'], layer['self']['v'] = layer['self']['k'][sel], layer['self']['v'][sel]
        if all(done): break
    best = []
    for b in range(B):
        if not finished[b]:   # nothing ended within the limit: take the best live beam as it is
            j = int(scores[b].argmax()); finished[b].append((0.0, ids[b * k + j, 1:].tolist()))
        best.append([c.bos_id] + max(finished[b], key=lambda x: x[0])[1])
    out = torch.full((B, max(map(len, best))), c.pad_id, dtype=torch.long, device=dev)
    for b, s in enumerate(best): out[b, :len(s)] = torch.tensor(s, device=dev)
    return out

@pytest.mark.parametrize('beam', [2, 3, 4])
def test_vectorised_beam_search_equals_the_per_image_loop(beam):
    "Random models with a small vocabulary end beams early, late or never; length penalty and repetition penalty vary."
    for seed in range(4):
        torch.manual_seed(seed)
        m = MusicTrOCR(ModelConfig('resnet50', 'tiny', decoder=DecoderConfig(vocab_size=9 + 3 * seed, d_model=32, n_layers=2, n_heads=4,
                                                                             d_ff=64, max_len=40, dropout=0.0))).eval()
        imgs, pm = torch.rand(5, 3, 64, 160), torch.ones(5, 64, 160, dtype=torch.bool); pm[2, :, 64:] = False
        for n, lp, rp in [(0, 1.0, 1.0), (1, 1.0, 1.0), (12, 1.0, 1.0), (39, 0.6, 1.0), (25, 1.2, 1.3)]:
            kw = dict(beam=beam, max_new_tokens=n, length_penalty=lp, repetition_penalty=rp)
            assert torch.equal(beam_search(m, imgs, pm, **kw), reference_beam_search(m, imgs, pm, **kw)), (seed, n, lp, rp)
