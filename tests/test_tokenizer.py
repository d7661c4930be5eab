import time
import pytest
from omr_blog.core import OmrBlogError
from omr_blog.tokenizer import SPECIAL_TOKENS, AbcTokenizer, load_legato_tokenizer

def test_round_trip_on_every_unseen_label(tiny, tokenizer):
    for split in ('val', 'test'):
        for t in tiny[split]['transcription']:
            assert tokenizer.decode_ids(tokenizer.encode_label(t)) == t

def test_truncation_keeps_eos(tiny, tokenizer):
    t = max(tiny['train']['transcription'], key=len)
    for n in (2, 5, 17):
        ids = tokenizer.encode_label(t, max_len=n)
        assert len(ids) == n and ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id

def test_specials_and_transformers_round_trip(tmp_path, tokenizer):
    ids = tokenizer.hf.convert_tokens_to_ids(SPECIAL_TOKENS)
    assert ids == list(range(len(SPECIAL_TOKENS)))
    tokenizer.save(tmp_path/'tok')
    again = AbcTokenizer.load(tmp_path/'tok')
    s = 'X:1\nT:<|text|>\nK:G\n [GBd]2 z | "Am" A>B |'
    assert again.encode(s) == tokenizer.encode(s) and again.decode_ids(again.encode_label(s)) == s
    assert tokenizer.encode('<|text|>') == [tokenizer.hf.convert_tokens_to_ids('<|text|>')]

def test_trained_on_train_only(tiny_dir, tokenizer):
    # every merge's pieces occur in the train labels: train a fresh one on train only and compare vocabularies
    fresh = AbcTokenizer.train(__import__('omr_blog.dataset', fromlist=['x']).load_omr_dataset(tiny_dir)['train']['transcription'])
    assert fresh.hf.get_vocab() == tokenizer.hf.get_vocab()

def test_missing_tokenizer_and_offline_legato(tmp_path):
    with pytest.raises(OmrBlogError, match='no tokenizer.json'): AbcTokenizer.load(tmp_path)
    t = time.time()
    with pytest.raises(OmrBlogError, match='hub'): load_legato_tokenizer()
    assert time.time() - t < 30
