import gzip
import io
import os
import warnings

import networkx as nx
import numpy as np
import pyhepmc
import pytest

from smartbkg.data.checks import ReadReport, SkippedEventsWarning
from smartbkg.data.hepmc import LabelFile, _GuardedStream, iter_hepmc, read_hepmc, write_hepmc
from smartbkg.data.table import EventTable
from smartbkg.errors import ConfigError, DataError

HEAD = "HepMC::Version 3.02.05\nHepMC::Asciiv3-START_EVENT_LISTING\n"
FOOT = "HepMC::Asciiv3-END_EVENT_LISTING\n\n"
# e+ e- -> Z (two parents) -> mu+ mu-, in MeV and mm; the Z decay vertex has no position of its own.
EVENT = """E 4 2 5 @ 1.0 2.0 3.0 299.792458
U MEV MM
A 0 event_type ccbar
A 0 skim.fei 1
P 1 0 11 0 0 5000 5000 0.511 4
P 2 0 -11 0 0 -4000 4000 0.511 4
V -1 0 [1,2] @ 10.0 -20.0 30.0 599.584916
P 3 -1 23 1000 2000 3000 9000 0 2
V -2 0 [3]
P 4 -2 13 500 0 0 600 105.7 1
P 5 -2 -13 500 2000 3000 8400 105.7 1
"""


def _hepmc(path, *events, footer=True):
    text = HEAD + "".join(events) + (FOOT if footer else "")
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wt") as out:
        out.write(text)
    return path


@pytest.mark.parametrize("name, units", [("t.hepmc", {}), ("t.hepmc.gz", {}),
                                         ("t.hepmc", {"momentum_unit": "MeV", "length_unit": "cm"})])
def test_round_trip_is_exact(tmp_path, small_table, random_table, name, units, assert_tables_equal):
    for table in (small_table, random_table(80, seed=7)):
        write_hepmc(table, tmp_path / name, **units)
        report = ReadReport()
        assert_tables_equal(read_hepmc(tmp_path / name, report=report), table)
        assert not report.skipped and not report.notes


def test_gzip_is_detected_from_content_not_name(tmp_path, small_table, assert_tables_equal):
    write_hepmc(small_table, tmp_path / "t.hepmc.gz")
    (tmp_path / "plain_name.hepmc").write_bytes((tmp_path / "t.hepmc.gz").read_bytes())
    assert_tables_equal(read_hepmc(tmp_path / "plain_name.hepmc"), small_table)


def test_chunks_add_up_to_the_whole(tmp_path, random_table, assert_tables_equal):
    table = random_table(50, seed=8)
    write_hepmc(table, tmp_path / "t.hepmc")
    chunks = list(iter_hepmc(tmp_path / "t.hepmc", chunk_events=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert_tables_equal(EventTable.concat(chunks), table)


def test_units_mothers_positions_and_beams(tmp_path):
    report = ReadReport()
    table = read_hepmc(_hepmc(tmp_path / "z.hepmc", EVENT), report=report)
    p = table.particles
    np.testing.assert_array_equal(p["pdg"], [11, -11, 23, 13, -13])
    np.testing.assert_array_equal(p["mother"], [-1, -1, 0, 2, 2])  # the first incoming particle
    np.testing.assert_array_equal(p["initial"], [True, True, False, False, False])
    np.testing.assert_allclose(p["px"], [0, 0, 1, 0.5, 0.5])  # MeV -> GeV
    np.testing.assert_allclose(p["energy"], [5, 4, 9, 0.6, 8.4])
    # Beams: the event position (mm -> cm, c*t -> ns); the Z: vertex -1; the muons: vertex -2,
    # which has no position and inherits that of vertex -1.
    np.testing.assert_allclose(p["x"], [0.1, 0.1, 1, 1, 1])
    np.testing.assert_allclose(p["y"], [0.2, 0.2, -2, -2, -2])
    np.testing.assert_allclose(p["z"], [0.3, 0.3, 3, 3, 3])
    np.testing.assert_allclose(p["prodTime"], [1, 1, 2, 2, 2], rtol=1e-6)
    assert table.skims == ("fei",) and table.labels.tolist() == [[True]]
    np.testing.assert_array_equal(table.event_type_names, ["ccbar"])
    np.testing.assert_array_equal(table.event_id, [4])
    assert table.weight is None
    assert dict(report.notes) == {"particles with several mothers (first incoming particle taken)": 1}


def test_tree_structure_against_networkx(tmp_path, random_table):
    # Reference: the parent links of pyhepmc's object API, independent of the vectorised reader.
    table = random_table(40, seed=9)
    write_hepmc(table, tmp_path / "t.hepmc")
    read = read_hepmc(tmp_path / "t.hepmc")
    with pyhepmc.open(tmp_path / "t.hepmc") as f:
        for e, event in enumerate(f):
            reference = nx.DiGraph()
            reference.add_nodes_from(p.id - 1 for p in event.particles)
            reference.add_edges_from((q.id - 1, p.id - 1) for p in event.particles for q in p.parents)
            mother = read.event(e)["mother"]
            graph = nx.DiGraph()
            graph.add_nodes_from(range(len(mother)))
            graph.add_edges_from((int(m), k) for k, m in enumerate(mother) if m >= 0)
            assert all(nx.ancestors(graph, k) == nx.ancestors(reference, k) for k in graph)


def test_labels_from_side_file(tmp_path):
    second = EVENT.replace("E 4 ", "E 8 ").replace("A 0 skim.fei 1\n", "").replace("A 0 event_type ccbar\n", "")
    third = EVENT.replace("E 4 ", "E 9 ")
    path = _hepmc(tmp_path / "z.hepmc", EVENT, second, third)
    (tmp_path / "labels.csv").write_text("event_number,a,b,event_type\n8,1,false,mixed\n4,0,TRUE,charged\n")
    report = ReadReport()
    table = read_hepmc(path, labels=tmp_path / "labels.csv", report=report)
    np.testing.assert_array_equal(table.event_id, [4, 8])
    assert table.skims == ("a", "b") and table.labels.tolist() == [[False, True], [True, False]]
    # An event_type attribute in the file wins over the side file.
    np.testing.assert_array_equal(table.event_type_names, ["ccbar", "mixed"])
    assert dict(report.skipped) == {"no labels in the label file": 1}
    with pytest.warns(SkippedEventsWarning, match=r"skipped 1 event: no labels in the label file \(1\)"):
        subset = read_hepmc(path, labels=tmp_path / "labels.csv", skims=["b"])  # no report: still announced
    assert subset.skims == ("b",) and subset.labels[:, 0].tolist() == [True, False]
    with pytest.raises(DataError, match="z.hepmc: event 9: field 'labels': no labels in the label file"):
        read_hepmc(path, labels=tmp_path / "labels.csv", strict=True)


@pytest.mark.parametrize("text, message", [
    ("number,a\n1,1\n", "starts with the header"),
    ("event_number,a\n1,1\n1,0\n", "event number listed twice"),
    ("event_number,a\n1,yes\n", "label 'yes' is not 0/1/true/false"),
    ("event_number,a\n1,1,1\n", "line 2 has 3 fields"),
    ("event_number,a\nx,1\n", "event numbers must be 64-bit integers"),
])
def test_bad_label_files(tmp_path, text, message):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        LabelFile(tmp_path / "l.csv")


def test_missing_or_invalid_skim_attributes_are_skipped(tmp_path):
    missing = EVENT.replace("E 4 ", "E 5 ").replace("A 0 skim.fei 1\n", "")
    invalid = EVENT.replace("E 4 ", "E 6 ").replace("skim.fei 1", "skim.fei maybe")
    report = ReadReport()
    table = read_hepmc(_hepmc(tmp_path / "z.hepmc", EVENT, missing, invalid), report=report)
    np.testing.assert_array_equal(table.event_id, [4])
    assert dict(report.skipped) == {"missing skim attribute": 1, "skim attribute is not 0/1/true/false": 1}
    no_labels = read_hepmc(tmp_path / "z.hepmc", skims=[])
    assert len(no_labels) == 3 and no_labels.labels.shape == (3, 0)


def test_default_event_type_and_weights(tmp_path):
    plain = EVENT.replace("A 0 event_type ccbar\n", "")
    weighted = plain.replace("E 4 ", "E 5 ").replace("U MEV MM\n", "U MEV MM\nW 2.5 1.0\n")
    table = read_hepmc(_hepmc(tmp_path / "z.hepmc", plain, weighted), default_event_type="signal")
    np.testing.assert_array_equal(table.event_type_names, ["signal", "signal"])
    np.testing.assert_array_equal(table.weight, [1.0, 2.5])


@pytest.mark.parametrize("line", ["W nan\n", "W inf\n", "W abc\n", "W 1e400\n", "W \n"])
def test_weight_lines_hepmc3_cannot_parse_are_skipped(tmp_path, line):
    # HepMC3 drops such lines silently; the event must not get weight 1.
    bad = EVENT.replace("E 4 ", "E 5 ").replace("U MEV MM\n", "U MEV MM\n" + line)
    good = EVENT.replace("E 4 ", "E 6 ").replace("U MEV MM\n", "U MEV MM\nW 0.25\n")
    report = ReadReport()
    table = read_hepmc(_hepmc(tmp_path / "w.hepmc", EVENT, bad, good), report=report)
    np.testing.assert_array_equal(table.event_id, [4, 6])
    np.testing.assert_array_equal(table.weight, [1.0, 0.25])  # event 4 has no weight line
    assert dict(report.skipped) == {"unreadable weight": 1}
    with pytest.raises(DataError, match="w.hepmc: event 5: field 'weight': unreadable weight"):
        read_hepmc(tmp_path / "w.hepmc", strict=True)


def test_truncated_files_count_every_lost_event(tmp_path, random_table):
    write_hepmc(random_table(30, seed=1), tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_bytes()
    cut = text.index(b"\nE ", len(text) // 2) + 40  # inside an event
    (tmp_path / "cut.hepmc").write_bytes(text[:cut])
    report = ReadReport()
    table = read_hepmc(tmp_path / "cut.hepmc", report=report)
    assert len(table) == text[:cut].count(b"\nE ") - 1
    assert report.skipped == {"event cut off at the end of the file": 1,
                              "events missing at the end of the file (truncated)": 30 - len(table) - 1}
    with pytest.raises(DataError, match="cut.hepmc: event .*: field 'particles': event cut off"):
        read_hepmc(tmp_path / "cut.hepmc", strict=True)
    packed = gzip.compress(text)
    (tmp_path / "cut.hepmc.gz").write_bytes(packed[: len(packed) // 2])
    report = ReadReport()
    table = read_hepmc(tmp_path / "cut.hepmc.gz", report=report)
    assert report.read == 30 and sum(report.skipped.values()) == 30 - len(table) > 0


def test_a_damaged_event_costs_that_event_only(tmp_path, small_table):
    write_hepmc(small_table, tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_text()
    for damage, reason in ((("E 10 3 8", "E 10 3 9"), "particle count differs from the event line"),
                           (("P 2 0 -11", "P 1 0 -11"), "particle lines not numbered 1..N in order"),
                           (("P 1 0 11 ", "P 1 0 abc "), "unreadable particle line"),
                           (("P 1 0 11 ", "P 1 1 11 "), "dangling mother link"),
                           (("U GEV MM", "U FOO BAR"), "unknown units"),
                           (("event_type mixed", "event_type " + "x" * 300_000), "line longer than HepMC3 reads")):
        (tmp_path / "d.hepmc").write_text(text.replace(*damage, 1))
        report = ReadReport()
        table = read_hepmc(tmp_path / "d.hepmc", report=report)
        assert table.event_id.tolist() == [11, 12] and report.read == 1
        assert list(report.skipped) == [next(r for r in report.skipped if r.startswith(reason))]


def test_event_numbers_keep_64_bits(tmp_path, small_table, assert_tables_equal):
    table = small_table.replace(event_id=(np.arange(3) + (5 << 40)))
    write_hepmc(table, tmp_path / "t.hepmc")
    assert_tables_equal(read_hepmc(tmp_path / "t.hepmc"), table)


def test_hepmc3_diagnostics_do_not_reach_the_user(tmp_path, random_table, capfd):
    write_hepmc(random_table(30, seed=1), tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_bytes()
    (tmp_path / "cut.hepmc").write_bytes(text[: text.index(b"\nE ", len(text) // 2) + 40])
    (tmp_path / "long.hepmc").write_bytes(text.replace(b"\nA 0 event_type", b"\nA 0 event_type " + b"x" * 263_000, 1))
    (tmp_path / "cut.hepmc.gz").write_bytes(gzip.compress(text)[: len(text) // 8])
    capfd.readouterr()
    for name in ("cut.hepmc", "long.hepmc", "cut.hepmc.gz"):
        report = ReadReport()
        read_hepmc(tmp_path / name, report=report)
        assert report.skipped
    print("after", flush=True)  # the descriptors are back
    os.write(2, b"err after")
    assert capfd.readouterr() == ("after\n", "err after")


def test_a_file_that_is_no_hepmc3_is_an_error(tmp_path):
    (tmp_path / "junk.hepmc").write_bytes(b"PAR1\x00\x15\x04" + bytes(range(256)) * 4)  # binary, as a parquet file
    with pytest.raises(DataError, match="junk.hepmc: not a HepMC3 ASCII file"):
        read_hepmc(tmp_path / "junk.hepmc")


def test_missing_footer_is_noted(tmp_path):
    report = ReadReport()
    assert len(read_hepmc(_hepmc(tmp_path / "z.hepmc", EVENT, footer=False), report=report)) == 1
    assert dict(report.notes) == {"file ends without the HepMC3 footer (truncated?)": 1,
                                  "particles with several mothers (first incoming particle taken)": 1}
    with pytest.raises(DataError, match="footer"):
        read_hepmc(tmp_path / "z.hepmc", strict=True)


def test_vertex_naming_a_missing_particle_is_skipped_not_a_crash(tmp_path):
    # HepMC3 itself segfaults on this; the reader repairs the line and skips the event.
    bad = EVENT.replace("E 4 ", "E 5 ").replace("V -2 0 [3]", "V -2 0 [3,99]")
    report = ReadReport()
    table = read_hepmc(_hepmc(tmp_path / "z.hepmc", EVENT, bad, EVENT.replace("E 4 ", "E 6 ")), report=report)
    np.testing.assert_array_equal(table.event_id, [4, 6])
    assert dict(report.skipped) == {"dangling mother link": 1}
    with pytest.raises(DataError, match="event 5: field 'mother': dangling mother link"):
        read_hepmc(tmp_path / "z.hepmc", strict=True)


def test_empty_event_is_kept_for_the_checks(tmp_path):
    empty = "E 5 0 0\nU GEV MM\nA 0 skim.fei 0\n"
    table = read_hepmc(_hepmc(tmp_path / "z.hepmc", EVENT, empty, EVENT.replace("E 4 ", "E 6 ")))
    np.testing.assert_array_equal(table.counts, [5, 0, 5])


def test_missing_file_and_writer_options(tmp_path, small_table):
    with pytest.raises(DataError, match="no such file"):
        read_hepmc(tmp_path / "none.hepmc")
    with pytest.raises(ConfigError, match="units"):
        write_hepmc(small_table, tmp_path / "t.hepmc", length_unit="m")


def test_writer_warns_about_roots_away_from_the_event_position(tmp_path, small_table):
    table = small_table.replace(particles={**small_table.particles, "x": small_table.particles["x"].copy()})
    table.particles["x"][1] += 1.0  # the second beam particle of event 0
    with pytest.warns(UserWarning, match="1 root particles away"):
        write_hepmc(table, tmp_path / "t.hepmc")
    assert read_hepmc(tmp_path / "t.hepmc").particles["x"][1] == small_table.particles["x"][0]


def test_writer_warns_about_siblings_away_from_their_shared_vertex(tmp_path, small_table):
    # Event 0: particles 3 and 4 are daughters of 2, particles 5 and 6 daughters of 3.
    p = {name: small_table.particles[name].copy() for name in ("x", "prodTime")}
    p["x"][4] += 1.0  # the second daughter of 2 elsewhere in space
    p["prodTime"][6] += 0.5  # the second daughter of 3 at another time
    table = small_table.replace(particles={**small_table.particles, **p})
    with pytest.warns(UserWarning, match="^2 particles away from their first sibling were written at that "
                                         "sibling's production point"):
        write_hepmc(table, tmp_path / "t.hepmc")
    back = read_hepmc(tmp_path / "t.hepmc").particles
    assert back["x"][4] == small_table.particles["x"][3] and back["prodTime"][6] == pytest.approx(
        small_table.particles["prodTime"][5], rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # siblings at one point: nothing to say
        write_hepmc(small_table, tmp_path / "t.hepmc")


@pytest.mark.parametrize("block", [997, 1 << 20])
def test_guarded_stream_passes_good_events_in_any_block_size(tmp_path, random_table, block):
    write_hepmc(random_table(40, seed=3), tmp_path / "t.hepmc")
    text = (tmp_path / "t.hepmc").read_bytes()
    bad = text.replace(b"V -2 0 [", b"V -2 0 [999,", 3)  # the first three events with a vertex -2
    for data, n_bad in ((text, 0), (bad, 3)):
        stream = _GuardedStream(io.BytesIO(data))
        stream.BLOCK = block
        out, buffer = bytearray(), bytearray(4096)
        while n := stream.readinto(memoryview(buffer)):
            out += buffer[:n]
        assert out.count(b"\nE ") == 40 - n_bad and out.endswith(b"END_EVENT_LISTING\n")
        assert stream.footer and stream.ordinal == 39 and stream.declared == 40
        assert [reason for *_, reason, _ in stream.dropped] == ["dangling mother link"] * n_bad
        if not n_bad:
            assert bytes(out) == text.rstrip(b"\n") + b"\n"
