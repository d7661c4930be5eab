import time
import pytest, torch
from omr_blog.backbones import BACKBONES, VisionBackbone, count_params, load_hf_backbone
from omr_blog.core import OmrBlogError
from omr_blog.model import DecoderConfig, ModelConfig, MusicTrOCR

SMALL_DEC = DecoderConfig(vocab_size=64, d_model=64, n_layers=1, n_heads=4, d_ff=128, max_len=32, dropout=0.0)

def _ragged(B, H, W, cut):
    imgs = torch.rand(B, 3, H, W); pm = torch.ones(B, H, W, dtype=torch.bool); pm[-1, :, cut:] = False
    return imgs, pm

SHAPES = {'strips': (64, 336, 150), 'pages': (300, 230, 170)}   # (height, width, where the shorter item's padding starts)

@pytest.mark.parametrize('shape', list(SHAPES))
@pytest.mark.parametrize('size', ['tiny', 'full'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_forward_backward_on_ragged_batches(name, size, shape):
    "Every family, full and tiny, on a ragged batch of strips and of pages (Swin pads pages to its window multiples)."
    m = MusicTrOCR(ModelConfig(name, size, decoder=SMALL_DEC))
    imgs, pm = _ragged(2, *SHAPES[shape])
    ids = torch.randint(3, 64, (2, 7)); ids[:, 0] = 1
    loss = m.loss(imgs, pm, ids); loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.backbone.parameters() if p.requires_grad)
    _, mask = m.encode(imgs, pm)
    assert 0 < mask[1].sum() < mask[0].sum()   # tokens that only saw padding are masked out

@pytest.mark.parametrize('height', [32, 48, 64, 96, 128])
def test_swin_accepts_every_preset_height(height):
    bb = VisionBackbone('swin_tiny', 'tiny').eval()
    with torch.no_grad(): f, m, (h, w) = bb(torch.rand(1, 3, height, 200))
    assert f.shape[1] == h * w == m.shape[1]

def test_pretrained_from_a_local_folder(tmp_path):
    src = load_hf_backbone('vit_small', 'tiny')
    src.save_pretrained(tmp_path/'ckpt')
    bb = VisionBackbone('vit_small', 'tiny', pretrained=str(tmp_path/'ckpt'))
    for (n, a), b in zip(src.state_dict().items(), bb.model.state_dict().values()): assert torch.equal(a, b), n

def test_pretrained_offline_fails_fast(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t = time.time()
    with pytest.raises(OmrBlogError, match='random initialisation'): VisionBackbone('resnet50', 'full', pretrained=True)
    assert time.time() - t < 5

def test_unknown_backbone():
    with pytest.raises(OmrBlogError, match='unknown backbone'): VisionBackbone('alexnet')

def test_full_encoders_are_the_named_architectures():
    sizes = {n: count_params(load_hf_backbone(n, 'full')) / 1e6 for n in BACKBONES}
    assert 27 < sizes['convnext_tiny'] < 29 and 23 < sizes['resnet50'] < 24 and 3.5 < sizes['efficientnet_b0'] < 5.5
    assert sizes['vit_small'] == sizes['deit_small'] and 21 < sizes['vit_small'] < 23
    assert 27 < sizes['swin_tiny'] < 29 and 4.5 < sizes['mobilevit_small'] < 6

def test_conv_stem_keeps_vit_token_grid_and_masks():
    "The convolutional-stem ablation changes how ViT cuts the image, not what the decoder receives."
    import torch
    from omr_blog.core import OmrBlogError
    from omr_blog.backbones import VisionBackbone
    torch.manual_seed(0)
    images, mask = torch.rand(2, 3, 48, 200), torch.ones(2, 48, 200, dtype=torch.bool); mask[1, :, 90:] = False
    patch, conv = VisionBackbone('vit_small', 'tiny'), VisionBackbone('vit_small', 'tiny', stem='conv')
    (fp, mp, gp), (fc, mc, gc) = patch(images, mask), conv(images, mask)
    assert fp.shape == fc.shape and gp == gc and torch.equal(mp, mc)
    with pytest.raises(OmrBlogError, match='replaces ViT patches'): VisionBackbone('swin_tiny', 'tiny', stem='conv')
    with pytest.raises(OmrBlogError, match='unknown stem'): VisionBackbone('vit_small', 'tiny', stem='pixel')

@pytest.mark.parametrize('name', list(BACKBONES))
def test_image_tokens_do_not_vanish_at_initialisation(name):
    "From scratch, every family's image tokens carry signal (transformers' init made the tiny EfficientNet's ~1e-32)."
    bb = VisionBackbone(name, 'tiny').train()
    with torch.no_grad(): f, _, _ = bb(torch.rand(2, 3, 48, 320))
    assert f.abs().mean() > 0.05

@pytest.mark.parametrize('name', ['efficientnet_b0', 'mobilevit_small'])
def test_batchnorm_starts_at_one_from_scratch_and_keeps_loaded_weights(name, tmp_path):
    bns = lambda m: [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    scratch = load_hf_backbone(name, 'tiny')
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) and b.momentum <= 0.1 for b in bns(scratch))
    with torch.no_grad():
        for k, b in enumerate(bns(scratch)): b.weight.fill_(0.5 + k / 100)   # weights a checkpoint would bring
    scratch.save_pretrained(tmp_path/'ckpt')
    loaded = load_hf_backbone(name, 'tiny', pretrained=str(tmp_path/'ckpt'))
    assert [b.weight[0].item() for b in bns(loaded)] == [b.weight[0].item() for b in bns(scratch)]
    assert all(b.momentum <= 0.1 for b in bns(loaded))   # PyTorch's meaning: the new batch's weight

def test_pixel_scale_reaches_the_backbone_and_an_unknown_one_fails():
    from omr_blog.checkpoints import build_model
    from omr_blog.config import make_config
    from omr_blog.tokenizer import AbcTokenizer
    with pytest.raises(OmrBlogError, match='unknown pixel scale'): VisionBackbone('resnet50', 'tiny', pixels='negative')
    tok = AbcTokenizer.train(['X:1\nK:C\nCDEF GABc|'] * 4, vocab_size=64)
    assert build_model(make_config('cpu-short', 'vit_small', pixels='ink'), tok).backbone.pixels == 'ink'
