"""Run records: strict JSON (non-finite numbers as null), CSV rows per epoch."""

import json
import math

import pytest

from smartbkg.train.logging import finite_or_null, write_history, write_json


def _strict(text):
    """Parse JSON refusing NaN/Infinity, which are not JSON (RFC 8259)."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null(tmp_path):
    history = [{"epoch": 1, "train/loss": math.nan, "val/significance": math.inf, "val/auc": 0.75},
               {"epoch": 2, "train/loss": 0.5, "val/significance": -math.inf, "val/auc": 0.8}]
    write_history(tmp_path, history)
    written = _strict((tmp_path / "metrics.json").read_text())
    assert written == [{"epoch": 1, "train/loss": None, "val/significance": None, "val/auc": 0.75},
                       {"epoch": 2, "train/loss": 0.5, "val/significance": None, "val/auc": 0.8}]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,train/loss,val/significance,val/auc"
    assert rows[1].split(",")[2] == "inf" and math.isnan(float(rows[1].split(",")[1]))

    write_json(tmp_path / "summary.json", {"auc": 0.9, "z": math.inf, "per_bin": (1.0, math.nan), "n": 3})
    assert _strict((tmp_path / "summary.json").read_text()) == {"auc": 0.9, "z": None, "per_bin": [1.0, None],
                                                                "n": 3}


def test_finite_or_null_keeps_everything_else():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": -0.0}}
    assert finite_or_null(value) == value
    with pytest.raises(ValueError):  # what write_json guards against: strict dumping refuses inf
        json.dumps({"z": math.inf}, allow_nan=False)
