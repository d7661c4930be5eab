"The metrics on hand-made cases: what counts as one ABC symbol, and rates summed over a corpus."
import pytest
from omr_blog.metrics import (abc_problems, abc_symbols, line_error_rate, music_symbol_error_rate, omr_ned_many,
                              score_predictions, symbol_error_rate)

@pytest.mark.parametrize('abc, symbols', [
    ("^^f,,2", ["^^f,,2"]), ("__B'/4", ["__B'/4"]), ("=c//", ["=c//"]), ("z3/2 x Z4", ["z3/2", "x", "Z4"]),
    ("[CEG]3/2", ["[", "C", "E", "G", "]3/2"]), ("|| |] [| |: :| :: |1 :|2 [2", ["||", "|]", "[|", "|:", ":|", "::", "|1", ":|2", "[2"]),
    ("(3:2:3ABc", ["(3:2:3", "A", "B", "c"]), ("(AB)", ["(", "A", "B", ")"]), ("A-A", ["A", "-", "A"]),
    ('"Am"A "_text"B', ['"Am"', "A", '"_text"', "B"]), ("!fermata!c +trill+d .e ~f", ["!fermata!", "c", "+trill+", "d", ".", "e", "~", "f"]),
    ("{/g}A", ["{", "/", "g", "}", "A"]), ("[M:6/8] [K:Bb]", ["[M:6/8]", "[K:Bb]"]), ("A>B C<D", ["A", ">", "B", "C", "<", "D"]),
    ("T:<|text|>\nw: <|text|> <|text|>", ["T:<|text|>", "w: <|text|> <|text|>"]),
])
def test_abc_symbols(abc, symbols):
    assert abc_symbols(abc) == symbols

def test_a_body_line_starting_with_a_note_is_not_a_header():
    assert abc_symbols('A:|') == ['A', ':|']

def test_rates_are_summed_over_the_corpus():
    refs = ['K:C\n C D E F |', 'K:C\n G |']                   # 6 and 3 symbols
    preds = ['K:C\n C D E G |', 'K:C\n A |']                   # one substitution each
    assert music_symbol_error_rate(preds, refs) == pytest.approx(2 / 9)
    assert line_error_rate(preds, refs) == pytest.approx(2 / 4)
    assert symbol_error_rate([[1, 2], []], [[1, 3], [4, 5]]) == pytest.approx(3 / 4)

def test_runaway_repetition_costs_more_than_the_reference():
    assert music_symbol_error_rate(['K:C\n' + 'C ' * 50], ['K:C\n C D |']) > 1

def test_validity_and_its_causes():
    assert abc_problems('X:1\nL:1/8\nK:C\n C D E |') == []
    assert abc_problems('') and abc_problems('X:1\nK:C\n')
    m = score_predictions(['X:1\nL:1/8\nK:C\n C D E |', 'X:1\nL:1/8\nK:C\n C [D E |'], ['X:1\nL:1/8\nK:C\n C D E |'] * 2)
    assert m['abc_validity'] == 0.5 and 'ser' not in m

def test_omr_ned_survives_a_crash_in_the_worker(monkeypatch):
    import omr_blog.metrics as M
    def boom(pair):
        if pair[0] == 'crash': import os; os._exit(3)   # a hard crash, as a native library can do
        return 0.25
    monkeypatch.setattr(M, '_omr_ned_pair', boom)
    assert omr_ned_many(['ok', 'crash', 'ok'], ['r', 'r', 'r'], workers=1) == [0.25, None, 0.25]
