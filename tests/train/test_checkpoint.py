"""Checkpoints: atomic writes, safe loading (weights_only=True), RNG state round trip."""

import os
import random
import re

import numpy as np
import pytest
import torch

from smartbkg.errors import DataError
from smartbkg.train.checkpoint import (FORMAT_VERSION, RESUME_KEYS, load_checkpoint, load_model_state, rng_state,
                                      save_checkpoint, set_rng_state)


def _state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    return {"format": FORMAT_VERSION, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "model_info": {"name": "linear", "options": {}, "skims": ["a"], "event_types": ["x"], "vocab_size": 3},
            "rng": [rng_state()], "history": [{"epoch": 1, "val/auc": 0.75}], "config": {"train": {"lr": 1e-3}}}


def test_round_trip_with_weights_only(tmp_path):
    state = _state()
    save_checkpoint(state, tmp_path / "ck" / "last.pt")
    loaded = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)  # the safe unpickler accepts it
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["optimizer"]["state"][0]["step"] == 1
    assert loaded["history"] == state["history"]
    assert list(tmp_path.joinpath("ck").iterdir()) == [tmp_path / "ck" / "last.pt"]  # no temp file left


def test_rng_states_restore_every_generator():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_rng_state_survives_the_file(tmp_path):
    torch.manual_seed(5)
    save_checkpoint({"format": 1, "model": {}, "rng": rng_state()}, tmp_path / "a.pt")
    expected = torch.rand(2), np.random.rand(2), random.random()
    set_rng_state(load_checkpoint(tmp_path / "a.pt", require=())["rng"])
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]


def test_gpu_rng_state_is_that_of_the_process_device(monkeypatch):
    """Each process saves and restores its own GPU's generator only, so a run saved on 4 GPUs
    resumes on 1. No GPU here: torch.cuda's two generator functions are replaced by a record of
    their calls (the rest of the state is real)."""
    assert rng_state()["cuda"] is None and rng_state(torch.device("cpu"))["cuda"] is None
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(3))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device, state.tolist())))
    state = rng_state(torch.device("cuda:3"))
    set_rng_state(state, torch.device("cuda:0"))   # resumed on another machine's first GPU
    set_rng_state(state)                            # or on a CPU: the GPU state is not used
    set_rng_state({**state, "cuda": []})            # a checkpoint of an older format
    assert calls == [("get", torch.device("cuda:3")), ("set", torch.device("cuda:0"), [1.0, 1.0, 1.0])]


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": 1, "model": {"w": torch.ones(2)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"format": 1, "model": {"w": Unpicklable()}}, path)
    assert torch.equal(load_checkpoint(path, require=())["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_bad_checkpoints_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="not a torch checkpoint: the file starts with b'not '"):
        load_checkpoint(tmp_path / "corrupt.pt")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(3000).replace(b"PK", b"pk"))
    with pytest.raises(DataError, match="not a torch checkpoint") as info:
        load_checkpoint(tmp_path / "random.pt")
    assert "\n" not in str(info.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DataError, match="the file is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    save_checkpoint({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="not a smartbkg checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": 1, "model": {}, "args": random.Random(0)}, tmp_path / "objects.pt")
    with pytest.raises(DataError, match=r"holds a Python object \(random.Random\) that the safe loader"):
        load_checkpoint(tmp_path / "objects.pt")
    torch.save({"format": 1, "model": {}, "args": os.system}, tmp_path / "objects.pt")
    with pytest.raises(DataError, match=r"holds a Python object \(posix.system\) that the safe loader"):
        load_checkpoint(tmp_path / "objects.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(_state(), good)
    good.write_bytes(good.read_bytes()[:200])  # truncated
    with pytest.raises(DataError, match="truncated or corrupt zip archive"):
        load_checkpoint(good)


@pytest.mark.parametrize("change, message", [
    ({"format": "1"}, "entry 'format' is not a format version (a positive integer) (got str)"),
    ({"model_info": None}, "entry 'model_info' is not {name, options, skims, event_types, vocab_size}"),
    ({"optimizer": [1]}, "entry 'optimizer' is not an optimizer state_dict"),
    ({"model": {"weight": 1.0}}, "entry 'model' is not a state_dict of named tensors"),
])
def test_damaged_entries_are_one_line_errors(tmp_path, change, message):
    save_checkpoint({**_state(), **change}, tmp_path / "c.pt")
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_checkpoint(tmp_path / "c.pt")
    assert "\n" not in str(info.value)


def test_missing_entries_and_weights_that_do_not_fit(tmp_path):
    state = _state()
    del state["model_info"]
    save_checkpoint(state, tmp_path / "c.pt")
    with pytest.raises(DataError, match=re.escape("incomplete checkpoint: no ['model_info'] entries")):
        load_checkpoint(tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt", require=())["format"] == FORMAT_VERSION
    with pytest.raises(DataError, match=re.escape("no ['epoch', 'step'")):
        load_checkpoint(tmp_path / "c.pt", require=RESUME_KEYS)
    model = torch.nn.Linear(3, 2)
    load_model_state(model, _state()["model"], tmp_path / "c.pt")
    with pytest.raises(DataError, match=re.escape("c.pt: model weights do not fit the Linear model: weight has "
                                                  "shape (2, 3), the model (3, 4) (1 more tensors differ)")):
        load_model_state(torch.nn.Linear(4, 3), _state()["model"], tmp_path / "c.pt")
    with pytest.raises(DataError, match=re.escape("missing ['bias'], unexpected []")):
        load_model_state(torch.nn.Linear(3, 2), {"weight": torch.ones(2, 3)}, tmp_path / "c.pt")
