"""Scheduled sampling and GRPO: what must hold for them to be what they claim (exact equalities where there are some)."""
import json, subprocess, sys
from pathlib import Path

import pytest, torch

from omr_blog.grpo import GRPOConfig, grpo_finetune, group_advantages, music_reward, policy_log_probs, sample_group, sequence_log_probs
from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR, lm_loss
from omr_blog.scheduled_sampling import gumbel_mixer
from omr_blog.checkpoints import load_checkpoint
from omr_blog.config import make_config
from omr_blog.train import train


def _model(backbone='resnet50'):
    torch.manual_seed(0)
    dec = DecoderConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=40)
    return MusicTrOCR(ModelConfig(backbone, 'tiny', decoder=dec))

def _batch(B=2, T=14, W=96):
    ids = torch.randint(3, 50, (B, T)); ids[:, 0] = 1; ids[1, 9:] = 0; ids[1, 8] = 2   # item 1 is shorter (padded)
    mask = torch.ones(B, 32, W, dtype=torch.bool); mask[1, :, 64:] = False
    return torch.rand(B, 3, 32, W), mask, ids

@pytest.mark.parametrize('backbone', ['resnet50', 'vit_small'])
def test_mixing_probability_zero_is_teacher_forcing_in_value_and_gradient(backbone):
    m = _model(backbone).eval()
    images, pmask, ids = _batch()
    m.zero_grad(); lm_loss(m(images, pmask, ids), ids, 0).backward()
    tf = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad(); lm_loss(m(images, pmask, ids, mix=gumbel_mixer(0.0, 1.0)), ids, 0).backward()
    ss = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
    assert tf.keys() == ss.keys() and all(torch.equal(tf[n], ss[n]) for n in tf)

def test_mixed_inputs_are_model_predictions_and_never_bos_or_padding():
    m = _model().eval()
    _, _, ids = _batch()
    logits = torch.randn(2, ids.shape[1], 50)
    x = gumbel_mixer(1.0, 0.5, hard=True)(m.decoder, ids, logits)         # (B, T, C)
    gold = m.decoder.tok(ids)
    assert torch.equal(x[:, 0], gold[:, 0])                                # BOS stays gold
    assert torch.equal(x[1, 9:], gold[1, 9:])                              # padding is never replaced
    nearest = (x[0, 1:, None] - m.decoder.tok.weight[None]).norm(dim=-1).min(-1).values
    assert (nearest < 1e-6).all()                                          # straight-through: real token embeddings

@pytest.mark.slow
def test_scheduled_sampling_run_resumes_to_the_same_losses(tiny_dir, tmp_path):
    kw = dict(dataset=str(tiny_dir), max_steps=8, batch_size=4, effective_batch=4, ckpt_every=3, log_every=1, eval_samples=2,
              eval_batch_size=2, omr_ned_samples=0, wandb=False, scheduled_sampling=0.5, ss_start=0.0, precision='fp32',
              decoder={'d_model': 64, 'n_layers': 1, 'n_heads': 4, 'd_ff': 128, 'max_len': 48})
    a = train(make_config('cpu-tiny', 'resnet50', out_dir=str(tmp_path/'a'), **kw), progress=False)
    train(make_config('cpu-tiny', 'resnet50', out_dir=str(tmp_path/'b'), **kw), progress=False, stop_after=5)
    b = train(make_config('cpu-tiny', 'resnet50', out_dir=str(tmp_path/'b'), **kw), progress=False)   # from the step-3 checkpoint
    log = lambda d: [json.loads(l) for l in (tmp_path/d/'log.jsonl').read_text().splitlines()]
    la, lb = log('a'), log('b')
    assert a['status'] == b['status'] == 'ok' and la[-1]['step'] == lb[-1]['step'] == 8
    assert lb[-1]['loss'] == pytest.approx(la[-1]['loss'], rel=1e-5)
    assert la[1]['mix_prob'] > 0 and la[-1]['mix_prob'] > la[1]['mix_prob'] and la[-1]['tau'] < la[1]['tau']

@pytest.mark.parametrize('temperature,top_k', [(1.0, 0), (0.7, 5), (1.5, 12)])
def test_grpo_ratio_is_one_before_the_first_update(temperature, top_k):
    m = _model().eval()
    images, pmask, _ = _batch()
    torch.manual_seed(3)
    mem, mmask = m.encode(images, pmask)
    s = sample_group(m, mem, mmask, group=5, max_new_tokens=30, temperature=temperature, top_k=top_k)
    new, plain = sequence_log_probs(m, mem.repeat_interleave(5, 0), mmask.repeat_interleave(5, 0), s['ids'], temperature, top_k)
    ratio = (new - s['logp'])[s['mask']].exp()
    assert s['mask'].sum() > 0 and torch.allclose(ratio, torch.ones_like(ratio), atol=1e-5)
    assert torch.isfinite(new[s['mask']]).all() and (plain[s['mask']] <= 0).all()
    if top_k:   # every drawn token is among the k best at its step
        lp = policy_log_probs(m.decoder(s['ids'][:, :-1], mem.repeat_interleave(5, 0), mmask.repeat_interleave(5, 0)), temperature, top_k)
        assert (torch.isfinite(lp).sum(-1) == top_k).all()

def test_reward_orders_readings_and_advantages_are_per_group():
    ref = 'X:1\nM:4/4\nK:D\nDEFG A2d2 | f2e2 d4 |'
    exact, wrong = music_reward(ref, ref), music_reward(ref.replace('A2d2', 'B2c2'), ref)
    cut = music_reward(ref, ref, finished=False)
    assert exact['music_ser'] == 0 and exact['reward'] > wrong['reward'] and exact['reward'] - cut['reward'] == pytest.approx(0.2)
    assert music_reward('garbage ((((', ref, valid_bonus=0.0)['reward'] >= -1
    adv = group_advantages(torch.tensor([3.0, 1.0, 2.0, 5.0, 5.0, 5.0]), group=3)
    assert adv[:3].tolist() == pytest.approx([1.2247, -1.2247, 0.0], abs=1e-3) and adv[3:].abs().max() < 1e-6

def test_grpo_finetune_trains_the_decoder_only_writes_a_loadable_run_and_skips_when_done(tiny_checkpoint, tmp_path):
    cfg = GRPOConfig(init_from=str(tiny_checkpoint), out_dir=str(tmp_path/'g'), steps=2, images_per_step=2, group=3,
                     max_new_tokens=12, eval_samples=2, top_k=10, lr=1e-3)
    r = grpo_finetune(cfg, progress=False)
    assert r['status'] == 'ok' and r['steps'] == 2 and set(r['metrics']) >= {'val', 'test'} and r['provenance']['git']
    log = [json.loads(l) for l in (tmp_path/'g'/'log.jsonl').read_text().splitlines()]
    assert len(log) == 2 and all(abs(x['first_ratio'] - 1) < 1e-5 for x in log)
    base, _, _ = load_checkpoint(tiny_checkpoint)
    tuned, _, _ = load_checkpoint(tmp_path/'g'/'checkpoint')
    b, t = base.state_dict(), tuned.state_dict()
    assert all(torch.equal(b[k], t[k]) for k in b if k.startswith(('backbone.', 'proj.')))        # encoder frozen
    assert any(not torch.equal(b[k], t[k]) for k in b if k.startswith('decoder.'))                # the policy moved
    stamp = (tmp_path/'g'/'log.jsonl').stat().st_mtime_ns
    assert grpo_finetune(cfg, progress=False) == json.loads((tmp_path/'g'/'result.json').read_text())
    assert (tmp_path/'g'/'log.jsonl').stat().st_mtime_ns == stamp                                   # not re-run

def test_grpo_cli_errors_are_one_line(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent/'omr-blog'), 'grpo', '--checkpoint', str(tmp_path/'nope')],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0 and 'no such checkpoint' in r.stderr
    assert not (tmp_path/'nope').exists()
