import xml.etree.ElementTree as ET
import pytest
from omr_blog.corpus import (ConversionError, abc_to_musicxml, canonical_abc, convert_piece, ensure_clefs, list_corpus,
                             musicxml_to_raw_abc, overlong_bars, parse_abc_layout, repair_overlong_bars, split_of, system_label, PieceRef)

def test_corpus_has_enough_pieces_and_a_stable_split():
    refs = list_corpus()
    assert len(refs) >= 14_000
    assert len({r.piece_id for r in refs}) == len(refs)
    assert [split_of(r.piece_id) for r in refs[:500]] == [split_of(r.piece_id) for r in refs[:500]]
    assert {split_of(r.piece_id) for r in refs} == {'train', 'val', 'test'}

def test_canonical_abc_replaces_every_text():
    raw = 'X:1\nT:My Tune\nC:Someone\nL:1/8\nM:4/4\nK:G\nV:1 treble nm="Violin" snm="Vl."\nV:1\n"^dolce" G2 "Am"A2 B2 c2 | %1\nw:la la la la'
    out = canonical_abc(raw)
    for word in ('My Tune', 'Someone', 'Violin', 'Vl.', 'dolce', 'la la', '%1'):
        assert word not in out
    assert 'T:<|text|>' in out and 'C:<|text|>' in out and '"^<|text|>"' in out and '"Am"' in out and 'w:<|text|>' in out

def test_legato_options_five_bars_per_line_unit_eighth():
    xml = ensure_clefs(abc_to_musicxml('X:1\nM:4/4\nL:1/4\nK:C\n' + 'CDEF|' * 12 + '\n'))
    abc = canonical_abc(musicxml_to_raw_abc(xml))
    lay = parse_abc_layout(abc)
    assert 'L:1/8' in abc and lay.n_systems == 3   # 12 bars, 5 per line
    assert system_label(lay, 2).splitlines()[-1].count('|') == 2   # the last line: two bars (<|text|> has bars too!)

def test_overlong_bars_repaired_or_refused():
    fixable = abc_to_musicxml('X:1\nM:3/4\nL:1/4\nK:C\nCDEFGA|B3|]\n')
    assert len(overlong_bars(fixable)) == 1
    fixed = repair_overlong_bars(fixable)
    assert overlong_bars(fixed) == [] and len(ET.fromstring(fixed).find('part').findall('measure')) == 3
    straddle = abc_to_musicxml('X:1\nM:3/4\nL:1/4\nK:C\nCDE2FG|B3|]\n')   # a half note crosses the lost bar line
    with pytest.raises(ConversionError) as e: repair_overlong_bars(straddle)
    assert e.value.cause == 'overlong_bars'

def test_bad_abc_and_bad_files_raise_conversion_errors(tmp_path):
    bad = tmp_path/'bad.abc'; bad.write_text('X:1\nT:a title and no music\nK:C\n')
    with pytest.raises(ConversionError): convert_piece(PieceRef('x/bad.abc#0', str(bad), 'abc'))
    cut = tmp_path/'cut.mxl'; cut.write_bytes(b'PK\x03\x04garbage')
    with pytest.raises(ConversionError) as e: convert_piece(PieceRef('x/cut.mxl#0', str(cut), 'musicxml'))
    assert e.value.cause == 'unreadable_source'
    with pytest.raises(ConversionError) as e: convert_piece(PieceRef('x/gone.xml#0', str(tmp_path/'gone.xml'), 'musicxml'))
    assert e.value.cause == 'unreadable_source'

def test_voice_line_mismatch_detected():
    with pytest.raises(ConversionError) as e:
        parse_abc_layout('X:1\nL:1/8\nK:C\nV:1 treble\nV:2 bass\nV:1\nCDEF|\nGABc|\nV:2\nC,D,E,F,|\n')
    assert e.value.cause == 'voice_line_mismatch'

def test_chord_reduction_merges_the_top_parts_into_one_staff_of_chords():
    from omr_blog.corpus import chord_reduction, piece_musicxml, system_label
    from omr_blog.ctc import has_chord
    chorale = next(r for r in list_corpus() if r.piece_id == 'bach/bwv1.6.mxl#0')
    four = piece_musicxml(chorale)
    two = ET.fromstring(chord_reduction(four, 2).encode())
    assert len(ET.fromstring(four.encode()).findall('part')) >= 4 and len(two.findall('part')) == 1
    chords = [n for n in two.iter('note') if n.find('chord') is not None and n.find('rest') is None]
    assert chords   # stacked notes exist: a <chord/> note shares the previous note's onset
    p = convert_piece(chorale, chord_parts=2)
    assert len(p.layout.voices) == 1 and any(has_chord(system_label(p.layout, i)) for i in range(p.layout.n_systems))

def test_chord_reduction_refuses_a_single_part():
    from omr_blog.corpus import chord_reduction
    melody = abc_to_musicxml('X:1\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|\n')
    with pytest.raises(ConversionError) as e: chord_reduction(melody, 2)
    assert e.value.cause == 'too_few_parts'
