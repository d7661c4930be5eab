"The joint CTC + attention loss: what it adds, that it is off by default, and that padding does not change it."
import torch
from omr_blog.checkpoints import build_model
from omr_blog.config import make_config
from omr_blog.ctc import ctc_loss
from omr_blog.model import lm_loss
from omr_blog.train import batch_loss

class Tok:   # the ids a tokenizer gives batch_loss
    pad_id, bos_id, eos_id = 0, 1, 2
    def __len__(self): return 64

def _model(ctc_weight):
    torch.manual_seed(0)
    cfg = make_config('cpu-tiny', 'resnet50', ctc_weight=ctc_weight, vocab_size=64, decoder={'max_len': 32}, precision='fp32')
    return build_model(cfg, Tok()).eval()

def _batch(widths=(320, 320)):
    torch.manual_seed(1)
    W = max(widths)
    images, mask = torch.zeros(len(widths), 3, 64, W), torch.zeros(len(widths), 64, W, dtype=torch.bool)
    for i, w in enumerate(widths): images[i, :, :, :w] = torch.rand(3, 64, w); mask[i, :, :w] = True
    ids = torch.randint(3, 64, (len(widths), 10)); ids[:, 0] = 1; ids[:, -1] = 2
    return {'images': images, 'pixel_mask': mask, 'ids': ids}

def test_without_a_weight_there_is_no_head_and_the_loss_is_cross_entropy():
    m, b = _model(0.0), _batch()
    assert m.ctc_head is None
    loss, terms = batch_loss(m, b, Tok())
    assert terms == {} and torch.allclose(loss, lm_loss(m(b['images'], b['pixel_mask'], b['ids']), b['ids'], 0))

def test_joint_loss_mixes_cross_entropy_and_ctc_and_reports_both():
    m, b = _model(0.3), _batch()
    loss, terms = batch_loss(m, b, Tok(), ctc_weight=0.3)
    logits, (lp, n) = m(b['images'], b['pixel_mask'], b['ids'], ctc=True)
    ce, ctc = lm_loss(logits, b['ids'], 0), ctc_loss(lp, n, b['ids'], (1, 2, 0), blank=0)
    assert abs(terms['ce_loss'] - ce.item()) < 1e-5 and abs(terms['ctc_loss'] - ctc.item()) < 1e-5
    assert torch.allclose(loss, 0.7 * ce + 0.3 * ctc, atol=1e-5)
    loss.backward()
    assert m.ctc_head.weight.grad is not None and m.backbone.parameters().__next__().grad is not None

def test_ctc_frames_of_a_padded_item_equal_the_item_alone_away_from_its_right_edge():
    "Frame order and counts survive padding; only the last columns differ, where the CNN's receptive field meets the padding."
    m = _model(0.3)
    both, alone = _batch((320, 192)), _batch((192,))
    alone['images'], alone['pixel_mask'], alone['ids'] = both['images'][1:, :, :, :192], both['pixel_mask'][1:, :, :192], both['ids'][1:]
    _, (lp_b, n_b) = m(both['images'], both['pixel_mask'], both['ids'], ctc=True)
    _, (lp_a, n_a) = m(alone['images'], alone['pixel_mask'], alone['ids'], ctc=True)
    assert n_b[1] == n_a[0]
    left = int(n_a[0]) // 2                                                  # 6 of 12 columns, x 4 rows
    assert torch.allclose(lp_b[1, :left], lp_a[0, :left], atol=1e-4)
