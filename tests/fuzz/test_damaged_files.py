"""Random truncations and byte flips of every file the package writes, through the readers and
(a sample) through the console scripts.

Every file format the package writes is written once per session from seeded synthetic events
(:func:`corpus`); the tests damage copies (random truncations and byte flips) and read
them, and hold the outcome to the contract of ``docs/guide/input_contract.rst``
(:func:`assert_contract`): a one-line package error, or the events that were not lost unchanged
with the lost ones counted as skipped, or the original result. Formats without a checksum over
every value (HepMC text, CSV label files, HDF5 ``fixed``) may change a value unnoticed where a
damaged byte still reads as a value; the contract lists that as not checkable, and the tests
count such events instead of failing on them.
"""

import gzip
import json
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartbkg.data import read_events, write_hdf5, write_hepmc, write_parquet
from smartbkg.data.synthetic import random_trees
from smartbkg.errors import SmartBkgError
from smartbkg.train.checkpoint import load_checkpoint, save_checkpoint
from smartbkg.train.config import RunConfig

#: Formats, as written by the package: name -> (file name, whether every value is under a checksum).
FORMATS = {
    "parquet": ("events.parquet", True),
    "hdf5-table": ("events.h5", True),
    "hdf5-compound": ("compound.h5", True),
    "hdf5-fixed": ("fixed.h5", False),
    "hepmc": ("events.hepmc", False),
    "hepmc-gz": ("events.hepmc.gz", True),  # gzip's CRC-32 covers the text
    "labels-csv": ("labels.csv", False),
}


@dataclass
class Corpus:
    folder: object
    reference: object  # the events as read back from the undamaged files

    def path(self, name):
        return self.folder / FORMATS[name][0]

    def read(self, name, path=None):
        """read_events of the file of format ``name`` (or of ``path``, a damaged copy of it)."""
        path = path or self.path(name)
        if name == "labels-csv":  # labels come from the side file; events from the HepMC file without labels
            return read_events(self.folder / "unlabelled.hepmc", labels=path, return_report=True)
        return read_events(path, return_report=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    table = random_trees(12, mean_particles=10, seed=4)
    table = table.replace(weight=np.linspace(0.5, 2.0, len(table)).astype(np.float32),
                          event_id=np.arange(len(table)) + (3 << 40))  # beyond 32 bits, as generated samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HepMC3 stores one vertex per mother: the writer says so
        write_hepmc(table, folder / "roundtrip.hepmc")
        table = read_events(folder / "roundtrip.hepmc")  # positions as HepMC3 can hold them: exact everywhere
        write_parquet(table, folder / "events.parquet")
        write_hdf5(table, folder / "events.h5")
        write_hdf5(table, folder / "compound.h5", layout="compound")
        write_hdf5(table, folder / "fixed.h5", layout="fixed")
        write_hepmc(table, folder / "events.hepmc")
        write_hepmc(table, folder / "events.hepmc.gz")
        write_hepmc(table.replace(labels=np.zeros((len(table), 0), bool), skims=()), folder / "unlabelled.hepmc")
    rows = [f"{i},{','.join(str(int(v)) for v in row)},{t}" for i, row, t in
            zip(table.event_id, table.labels, table.event_type_names)]
    (folder / "labels.csv").write_text("\n".join(["event_number," + ",".join(table.skims) + ",event_type", *rows]) + "\n")
    assert gzip.decompress((folder / "events.hepmc.gz").read_bytes()) == (folder / "events.hepmc").read_bytes()
    return Corpus(folder, table)


def damage(data, cut=None, flips=()):
    """``data`` cut to the fraction ``cut`` of its length, with bytes replaced: flips are
    (position as a fraction of the length, new byte)."""
    data = bytearray(data)
    for where, byte in flips:
        data[min(int(where * len(data)), len(data) - 1)] = byte
    return bytes(data[:int(cut * len(data))] if cut is not None else data)


def read_outcome(read):
    """("error", message) or ("read", (table, report)); anything but a package error propagates."""
    try:
        return "read", read()
    except SmartBkgError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not one line: {message!r}"
        return "error", message


def same_event(a, i, b, j):
    """Event i of table a equals event j of table b in every field."""
    if a.counts[i] != b.counts[j] or a.event_id[i] != b.event_id[j]:
        return False
    ea, eb = a.event(i), b.event(j)
    if not all(np.array_equal(ea[name], eb[name]) for name in ea):
        return False
    if (a.weight is None) != (b.weight is None) or (a.weight is not None and a.weight[i] != b.weight[j]):
        return False
    return bool(np.array_equal(a.labels[i], b.labels[j]) and a.skims == b.skims
                and a.event_type_names[i] == b.event_type_names[j])


def assert_contract(outcome, reference, checksummed):
    """Hold a read's outcome to the contract; returns "error", "equal", "skipped" or "changed"."""
    kind, value = outcome
    if kind == "error":
        return "error"
    table, report = value
    assert report.read == report.kept + sum(report.skipped.values()), report
    assert len(table) == report.kept, report
    changed, j = 0, 0
    for i in range(len(table)):  # the kept events must be the reference's, in order
        start = j
        while j < len(reference) and not same_event(table, i, reference, j):
            j += 1
        if j == len(reference):
            changed, j = changed + 1, start
        else:
            j += 1
    assert not (changed and checksummed), f"{changed} events changed without an error or a note: {report}"
    lost = len(reference) - len(table)
    assert sum(report.skipped.values()) == lost, f"{lost} events lost, skips counted: {dict(report.skipped)}"
    if changed:
        return "changed"
    return "skipped" if lost else "equal"



#: Examples per format: the default suite's run and the slow one.
CI_EXAMPLES, SLOW_EXAMPLES = 30, 400

damages = st.one_of(
    st.fixed_dictionaries({"cut": st.floats(0, 1, exclude_max=True)}),
    st.fixed_dictionaries({"flips": st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                             min_size=1, max_size=3)}),
)


def _settings(examples):
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def check_damaged_file(corpus, name, change, tmp_path, outcomes):
    file_name, checksummed = FORMATS[name]
    path = tmp_path / f"damaged-{file_name}"
    path.write_bytes(damage(corpus.path(name).read_bytes(), **change))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every skip is in the report, not a warning
        outcome = read_outcome(lambda: corpus.read(name, path))
    outcomes[assert_contract(outcome, corpus.reference, checksummed)] += 1


@pytest.mark.parametrize("name", FORMATS)
def test_damaged_files_meet_the_contract(corpus, name, tmp_path):
    outcomes = Counter()
    given(damages)(_settings(CI_EXAMPLES)(lambda change: check_damaged_file(corpus, name, change, tmp_path,
                                                                               outcomes)))()
    assert outcomes["error"] + outcomes["skipped"] > 0, outcomes  # the damage was noticed somewhere


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_damaged_files_meet_the_contract_at_length(corpus, name, tmp_path):
    outcomes = Counter()
    given(damages)(_settings(SLOW_EXAMPLES)(lambda change: check_damaged_file(corpus, name, change, tmp_path,
                                                                                 outcomes)))()
    print(f"{name}: {dict(sorted(outcomes.items()))}")  # the figures of docs/guide/input_contract.rst (pytest -s)
    if FORMATS[name][1]:
        assert not outcomes["changed"]


def _convert(*args):
    code = "import sys; from smartbkg.cli import convert_main; convert_main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name, change", [
    ("parquet", {"flips": [(0.5, 0)]}),
    ("hdf5-table", {"cut": 0.7}),
    ("hepmc", {"cut": 0.6}),
    ("hepmc-gz", {"flips": [(0.4, 17)]}),
    ("hepmc", {"cut": 0.02}),  # nothing but the header: no event to write
])
def test_convert_on_damaged_files_one_line_or_counted(corpus, tmp_path, name, change):
    path = tmp_path / f"in-{FORMATS[name][0]}"
    path.write_bytes(damage(corpus.path(name).read_bytes(), **change))
    result = _convert(path, "--out", tmp_path / "out", "--quiet")
    assert "Traceback" not in result.stderr
    if result.returncode:
        assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert not list((tmp_path / "out").glob("part-*"))
        return
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    lost = len(corpus.reference) - summary["events_written"]
    assert summary["report"]["read"] == len(corpus.reference) and sum(summary["report"]["skipped"].values()) == lost


# -------------------------------------------------------------------------- configs and checkpoints
@pytest.fixture(scope="module")
def config_text():
    return yaml.safe_dump({"data": {"path": ["shards"], "skims": ["a", "b"], "batch_size": 64},
                           "model": {"name": "gatgap", "options": {"units": 32}},
                           "train": {"epochs": 3, "lr": 0.002, "seed": 7}, "out": "runs/x"}).encode()


@given(change=damages)
@_settings(CI_EXAMPLES * 2)
def test_damaged_configs_are_one_line_errors_or_configs(config_text, tmp_path, change):
    path = tmp_path / "config.yaml"
    path.write_bytes(damage(config_text, **change))
    kind, value = read_outcome(lambda: RunConfig.from_file(path))
    assert kind == "error" or isinstance(value, RunConfig)  # a changed value in YAML text is not checkable


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 8)).sum().backward()
    optimizer.step()
    state = {"format": 1, "epoch": 2, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "model_info": {"name": "linear", "options": {}, "skims": ["a"], "event_types": ["x"], "vocab_size": 4}}
    path = tmp_path_factory.mktemp("checkpoint") / "c.pt"
    save_checkpoint(state, path)
    return path, load_checkpoint(path)


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@given(change=damages)
@_settings(CI_EXAMPLES * 2)
def test_damaged_checkpoints_are_one_line_errors_or_unchanged(checkpoint, tmp_path, change):
    original, state = checkpoint
    path = tmp_path / "c.pt"
    path.write_bytes(damage(original.read_bytes(), **change))
    kind, value = read_outcome(lambda: load_checkpoint(path))
    assert kind == "error" or _equal(value, state), "a changed checkpoint loaded without an error"


def test_a_refused_global_names_the_object(tmp_path):
    torch.save({"format": 1, "model": {}, "hook": __import__("os").system}, tmp_path / "evil.pt")
    with pytest.raises(SmartBkgError, match=r"holds a Python object \(posix.system\)"):
        load_checkpoint(tmp_path / "evil.pt")
