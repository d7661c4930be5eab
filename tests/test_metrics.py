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

def test_class_error_rates_put_each_error_in_its_class():
    from omr_blog.metrics import class_error_rates, length_confusions, symbol_classes
    ref = 'X:1\nL:1/8\nM:6/8\nK:G\n B2 A | z2 (3GAB |'
    same = class_error_rates([ref], [ref])
    assert all(v['errors'] == 0 and v['error_rate'] == 0 for v in same.values())
    assert same['note pitch']['reference'] == same['note length']['reference'] == same['note']['reference'] == 5
    cases = {'K:D': 'field K', 'z4': 'rest', '(3GA^B': 'note pitch', '(3GAB/': 'note length', '||': 'bar', 'M:3/4': 'field M'}
    old = {'K:D': 'K:G', 'z4': 'z2', '(3GA^B': '(3GAB', '(3GAB/': '(3GAB', '||': '|', 'M:3/4': 'M:6/8'}
    for new, cls in cases.items():
        pred = ref.replace(old[new], new, 1) if new != '||' else ref.replace(' |', ' ||', 1)
        wrong = {k for k, v in class_error_rates([pred], [ref]).items() if v['errors']}
        assert cls in wrong and wrong <= {cls, 'note'}, (new, wrong)       # a pitch or length error is also a note error
    assert symbol_classes('A,2 ^c\'/')['note length'] == ['2', '/'] and symbol_classes('A,2 ^c\'/')['note pitch'] == ['A,', "^c'"]
    assert class_error_rates(['A B C'], ['A B'])['note']['error_rate'] == 0.5                # an invented note
    assert length_confusions(['B4 A2 B'], ['B2 A2 F']) == {('2', '4'): 1}                    # F/B do not line up: not counted
