"""`omr-blog transcribe` and `omr-blog eval` on real files: every bad input is one line naming the file and cause,
exit code 2, nothing written for it, and the other images of the call still succeed."""
import json, struct, subprocess, sys, zlib
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from omr_blog.core import OmrBlogError
from omr_blog.checkpoints import load_checkpoint
from omr_blog.transcribe import default_checkpoint, find_systems, join_systems, transcribe

BIN = Path(sys.executable).parent/'omr-blog'

def run(*args, cwd=None):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

def png_with_header(width: int, height: int) -> bytes:
    "A PNG whose header claims width x height, with one tiny (wrong) data chunk."
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', zlib.compress(b'\x00' * 8)) + _png_chunk(b'IEND', b'')

@pytest.fixture(scope='module')
def strip(tiny):
    return tiny['test'][0]['image']

@pytest.fixture(scope='module')
def bad_images(tmp_path_factory, strip):
    d = tmp_path_factory.mktemp('bad')
    good = d/'good.png'; strip.save(good)
    (d/'text.png').write_text('this is not a picture')
    raw = good.read_bytes(); (d/'truncated.png').write_bytes(raw[:len(raw) // 2])
    (d/'zero.png').write_bytes(png_with_header(0, 10))
    (d/'huge.png').write_bytes(png_with_header(100_000, 100_000))
    return d

CAUSES = {'missing.png': 'no such file', 'text.png': 'not an image', 'truncated.png': 'unreadable image',
          'zero.png': 'invalid image header', 'huge.png': 'too large'}

def test_each_bad_image_is_one_line_and_writes_nothing(bad_images, tiny_checkpoint, tmp_path):
    out = tmp_path/'out'
    names = list(CAUSES)
    res = transcribe([bad_images/n for n in names], tiny_checkpoint, out)
    assert [r.ok for r in res] == [False] * len(names)
    for r, n in zip(res, names):
        assert r.error.startswith(str(bad_images/n)) and '\n' not in r.error and CAUSES[n] in r.error, r.error
    assert not out.exists() or not any(out.iterdir())

def test_cli_bad_and_good_images_in_one_call(bad_images, tmp_path):
    out = tmp_path/'out'
    r = run('transcribe', bad_images/'good.png', bad_images/'text.png', bad_images/'truncated.png', '--out', out, '--json')
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and all(l.startswith('omr-blog transcribe: error: ') for l in errors)
    recs = json.loads(r.stdout)
    assert [x['ok'] for x in recs] == [True, False, False]
    assert sorted(p.name for p in out.iterdir()) == ['good.abc', 'good.mid', 'good.musicxml', 'good.png']
    assert recs[0]['abc'] == (out/'good.abc').read_text().strip()
    assert Image.open(out/'good.png').size[0] > 100 and (out/'good.mid').read_bytes()[:4] == b'MThd'

def _modes(strip):
    rgb = strip.convert('RGB')
    a = np.asarray(strip.convert('L')).astype(np.uint16) * 257
    return {'grey': strip.convert('L'), 'palette': rgb.convert('P'), 'alpha': rgb.convert('RGBA'),
            'cmyk': rgb.convert('CMYK'), 'grey16': Image.fromarray(a), 'bilevel': strip.convert('1')}

def test_every_image_mode_is_read(strip, tmp_path):
    files = []
    for name, im in _modes(strip).items():
        f = tmp_path/f'{name}.{"jpg" if name == "cmyk" else "png"}'; im.save(f); files.append(f)
    res = transcribe(files, default_checkpoint(), tmp_path/'out')
    assert all(r.ok for r in res), [r.error for r in res if not r.ok]
    base = res[0].abc   # grey, opaque alpha and 16-bit carry the same pixels: the same transcription
    assert res[2].abc == base and res[4].abc == base   # (a palette quantises the greys, JPEG is lossy: they may differ)

def test_a_page_is_cut_into_systems(tmp_path):
    from omr_blog.corpus import ConversionError, list_corpus, convert_piece
    from omr_blog.render import RenderStyle, render_pages
    def pieces():
        for r in [r for r in list_corpus() if r.piece_id.startswith('essenFolksong/') and r.kind == 'abc'][40:120]:
            try: yield convert_piece(r)
            except ConversionError: pass   # (the dataset drops these too)
    piece = next(p for p in pieces() if 15 < p.n_measures <= 30)
    page = render_pages(piece.musicxml, RenderStyle(zoom=1.5), page_height=2970)[0]
    photo = Image.new('RGB', (page.width + 400, page.height + 600), (235, 232, 225))   # a page on a desk
    photo.paste(page.convert('RGB'), (200, 300))
    assert len(find_systems(photo)) == piece.layout.n_systems
    f = tmp_path/'photo.jpg'; photo.save(f, quality=90)
    res = transcribe([f], default_checkpoint(), tmp_path/'out')
    assert res[0].ok and res[0].systems == piece.layout.n_systems

def test_join_systems_keeps_one_header():
    a = 'X:1\nL:1/8\nM:3/4\nK:D\nV:1\n FDE | F2 |'
    b = 'X:1\nL:1/8\nM:3/4\nK:D\nV:1\n A2 | B2 |]'
    assert join_systems([a, b]) == 'X:1\nL:1/8\nM:3/4\nK:D\nV:1\n FDE | F2 |\n A2 | B2 |]'

def test_bad_checkpoints_are_one_line_errors(tmp_path, tiny_checkpoint, bad_images):
    from transformers import ResNetConfig, ResNetModel
    hf = tmp_path/'hf'; ResNetModel(ResNetConfig(hidden_sizes=[8, 8, 8, 8], embedding_size=8, depths=[1, 1, 1, 1])).save_pretrained(hf)
    no_weights = tmp_path/'no_weights'; no_weights.mkdir()
    (no_weights/'config.json').write_text((tiny_checkpoint/'config.json').read_text())
    other = tmp_path/'other'; other.mkdir()
    cfg = json.loads((tiny_checkpoint/'config.json').read_text()); cfg['backbone'] = 'convnext_tiny'
    (other/'config.json').write_text(json.dumps(cfg)); (other/'model.safetensors').write_bytes((tiny_checkpoint/'model.safetensors').read_bytes())
    truncated = tmp_path/'truncated'; truncated.mkdir()
    (truncated/'config.json').write_text((tiny_checkpoint/'config.json').read_text())
    (truncated/'model.safetensors').write_bytes((tiny_checkpoint/'model.safetensors').read_bytes()[:1000])
    cases = {tmp_path/'absent': 'no such checkpoint directory', hf: 'not an omr-blog training config',
             no_weights: 'no model.safetensors', other: 'does not fit', truncated: 'unreadable'}
    for ckpt, cause in cases.items():
        with pytest.raises(OmrBlogError, match=cause): load_checkpoint(ckpt)
    r = run('transcribe', bad_images/'good.png', '--checkpoint', other, '--out', tmp_path/'o')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert str(other) in r.stderr and not (tmp_path/'o').exists()

def test_eval_cli_writes_consistent_files(tiny_checkpoint, tmp_path):
    out = tmp_path/'eval'
    r = run('eval', '--checkpoint', tiny_checkpoint, '--n', 6, '--omr-ned', 2, '--out', out, '--quiet', '--max-new-tokens', 12)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out/'test.json').read_text())
    rows = [json.loads(l) for l in (out/'test-predictions.jsonl').read_text().splitlines()]
    assert rec['metrics']['n'] == len(rows) == 6 and rec['provenance']['git'] and rec['dataset']['fingerprint']
    assert rec['metrics']['omr_ned_n'] + rec['metrics']['omr_ned_failed'] == 2
    assert abs(rec['metrics']['exact_match'] - sum(x['prediction'] == x['reference'] for x in rows) / 6) < 1e-12
    r = run('eval', '--checkpoint', tiny_checkpoint, '--split', 'nope', '--out', out)
    assert r.returncode == 2 and 'no such split' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run('eval', '--checkpoint', tiny_checkpoint, '--n', 2, '--omr-ned', 0, '--out', out, '--quiet', '--max-new-tokens', 4,
            '--dataset', rec['dataset']['name'], '--name', 'test_elsewhere')   # as a split of another dataset is named after it
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'test_elsewhere.json').read_text())['metrics']['n'] == 2 and (out/'test_elsewhere-predictions.jsonl').exists()
    r = run('eval', '--checkpoint', tiny_checkpoint, '--n', 2, '--omr-ned', 0, '--out', out, '--quiet', '--max-new-tokens', 4,
            '--staff-share', 0.3)   # another reading of the same weights gets its own record, beside the plain one
    assert r.returncode == 0, r.stderr
    assert json.loads((out/'test-fitted-0.3.json').read_text())['staff_share'] == 0.3 and json.loads((out/'test.json').read_text())['metrics']['n'] == 6

def test_the_degraded_test_split_is_the_test_split_as_fixed_scans(tiny_checkpoint, tmp_path):
    for out in (tmp_path/'a', tmp_path/'b'):   # twice: the same degraded copies, so the same predictions
        r = run('eval', '--checkpoint', tiny_checkpoint, '--split', 'test_degraded', '--n', 4, '--omr-ned', 0, '--out', out,
                '--quiet', '--max-new-tokens', 12)
        assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path/'a'/'test_degraded.json').read_text())
    assert rec['split'] == 'test_degraded' and rec['metrics']['n'] == 4
    assert (tmp_path/'a'/'test_degraded-predictions.jsonl').read_text() == (tmp_path/'b'/'test_degraded-predictions.jsonl').read_text()

def _no_music(tmp_path) -> list[Path]:
    "Images with no staff in them: blank, black, one pixel, noise, a desk, a letter in a large font, a ruled notebook page."
    from PIL import ImageDraw, ImageFont
    from omr_blog.transcribe import ruled_paper, text_page
    rng = np.random.default_rng(0)
    desk, letter, ruled = Image.new('L', (400, 300), 170), text_page(ImageFont.load_default(20), 600), ruled_paper(20)
    for box in [(40, 20, 240, 60), (30, 150, 250, 200), (260, 90, 390, 140), (100, 230, 380, 290)]: ImageDraw.Draw(desk).rectangle(box, fill=40)   # books
    ims = {'white': Image.new('L', (600, 120), 255), 'black': Image.new('L', (600, 120), 0), 'pixel': Image.new('RGB', (1, 1)),
           'noise': Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)), 'desk': desk, 'letter': letter, 'ruled': ruled}
    files = []
    for name, im in ims.items(): f = tmp_path/f'{name}.png'; im.save(f); files.append(f)
    return files

def test_an_image_without_music_is_refused_not_guessed(tiny_checkpoint, tmp_path):
    files = _no_music(tmp_path)
    res = transcribe(files, tiny_checkpoint, tmp_path/'out')
    assert [r.ok for r in res] == [False] * len(files)
    for r, f in zip(res, files): assert r.error == f'{f}: no staff found: the image shows no five-line staff, so there is no music to read'
    assert not (tmp_path/'out').exists() or not any((tmp_path/'out').iterdir())
    r = run('transcribe', files[0], '--out', tmp_path/'cli')
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f'omr-blog transcribe: error: {files[0]}: no staff found: '
                                                                    'the image shows no five-line staff, so there is no music to read']

def test_confidence_is_the_mean_log_probability_of_the_tokens_written(tiny_checkpoint, strip):
    import torch
    from omr_blog.batching import image_to_tensor, pad_images
    from omr_blog.decoding import greedy_decode
    from omr_blog.transcribe import sequence_confidence
    model, tok, cfg = load_checkpoint(tiny_checkpoint)
    spec = cfg.image_spec(model.backbone.multiple)
    images, mask = pad_images([image_to_tensor(strip, spec), image_to_tensor(strip.crop((0, 0, strip.width // 2, strip.height)), spec)], spec)
    with torch.no_grad():
        ids = greedy_decode(model, images, mask, max_new_tokens=20)
        got = sequence_confidence(model, images, mask, ids, model.cfg.decoder.pad_id)
        for b in range(2):   # by hand: one token at a time, the probability the model gave the token it then wrote
            row = ids[b].tolist()[1:]
            n = row.index(tok.eos_id) + 1 if tok.eos_id in row else len(row)
            logp = [torch.log_softmax(model(images[b:b + 1], mask[b:b + 1], ids[b:b + 1, :k + 2]).float()[0, -1], -1)[row[k]].item()
                    for k in range(n)]
            assert abs(got[b] - sum(logp) / n) < 1e-4, (got[b], sum(logp) / n)
            assert got[b] <= 0

def test_the_preview_shows_no_title_placeholder():
    "A model writes T:<|text|> for a title it cannot read; the preview engraves the music without it, as if there were no title."
    from omr_blog.corpus import abc_to_musicxml
    from omr_blog.transcribe import preview_png
    tune = 'L:1/8\nM:2/4\nK:D\nV:1 treble\nV:1\n A2 Ad | d2 cd |'
    placeholder, untitled, titled = (preview_png(abc_to_musicxml(f'X:1\n{t}{tune}')) for t in ('T:<|text|>\n', '', 'T:A real title\n'))
    assert placeholder == untitled != titled

def test_a_checkpoint_trained_with_fitted_staves_reads_every_image_fitted(tiny_checkpoint, strip, tmp_path):
    "What reaches the backbone when transcribing: the cut system, fitted exactly as the checkpoint's spec says, paper or no paper."
    import shutil
    from omr_blog.batching import image_to_tensor, pad_images, to_rgb
    from omr_blog.transcribe import crop_systems, transcribe_image
    fitted = tmp_path/'fitted'; shutil.copytree(tiny_checkpoint, fitted)
    cfg_file = fitted/'config.json'; cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), 'staff_share': 0.265}))
    s = to_rgb(strip); roomy = Image.new('RGB', (s.width, s.height * 3), 'white'); roomy.paste(s, (0, s.height))
    seen = {}
    for name, ck in (('plain', tiny_checkpoint), ('fitted', fitted)):
        model, tok, cfg = load_checkpoint(ck)
        spec = cfg.image_spec(model.backbone.multiple)
        for which, im in (('strip', s), ('roomy', roomy)):
            got = []
            hook = model.backbone.register_forward_pre_hook(lambda mod, args: got.append(args[0][0].clone()))
            transcribe_image(model, tok, cfg, im, max_new_tokens=2)
            hook.remove()
            want = pad_images([image_to_tensor(crop_systems(im)[0], spec)], spec)[0][0]   # padded to the stride, as a batch of one
            assert got[0].shape == want.shape and torch.equal(got[0], want)   # the model reads exactly the spec's view
            seen[name, which] = got[0]
    assert seen['fitted', 'strip'].shape == seen['fitted', 'roomy'].shape    # fitted: the extra paper is cropped away again
    assert (seen['fitted', 'strip'] - seen['fitted', 'roomy']).abs().mean() < 0.02
    assert seen['plain', 'strip'].shape != seen['fitted', 'strip'].shape     # and the fit changed what the model reads
