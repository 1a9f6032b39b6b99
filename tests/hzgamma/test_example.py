import json
import subprocess
import sys

import numpy as np
import pytest

from smartbkg.hzgamma.example import MODELS, build_datasets, evaluate, sculpting


def test_datasets_are_weighted_to_the_luminosity_and_standardised():
    train, val, test = build_datasets(400, 1200, seed=3)
    assert len(train) + len(val) + len(test) > 300
    for split in (train, val, test):
        y, w = split.y[:, 0].numpy(), split.weight.numpy()
        assert 0 < w[y == 1].sum() < 1000 < w[y == 0].sum()  # a few hundred signal events, ~1e5 background
    np.testing.assert_allclose(train.x.numpy().mean(0), 0, atol=1e-4)
    assert set(train.variables) == {"mass"} and (train.variables["mass"] > 105).all()


def test_evaluate_and_sculpting_by_hand():
    _, _, test = build_datasets(300, 900, seed=4)
    y = test.y[:, 0].numpy()
    perfect = evaluate(y.astype(float) + 0.01 * np.random.default_rng(0).random(len(y)), test)
    assert perfect["auc"] == 1.0 and perfect["significance"] > 0
    mass = test.variables["mass"].numpy().astype(np.float64)
    window = np.abs(mass - 125) < 3
    peaked = sculpting(np.where(window, 1.0, 0.0) + 1e-3 * mass, test, background_efficiency=0.05)
    centre = (np.array(peaked["edges"][1:]) + peaked["edges"][:-1]) / 2
    assert np.all(np.array(peaked["after"])[np.abs(centre - 125) > 4] == 0)  # a mass cut sculpts the background
    y, w = test.y[:, 0].numpy(), test.weight.numpy()
    passed = (np.where(window, 1.0, 0.0) + 1e-3 * mass) >= peaked["cut"]
    assert peaked["signal_efficiency"] == pytest.approx(w[(y == 1) & passed].sum() / w[y == 1].sum())


def test_classify_cli_writes_the_comparison(tmp_path):
    code = "import sys; from smartbkg.cli import classify_main; classify_main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "--out", tmp_path / "out", "--signal", "600",
                           "--background", "1800", "--epochs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["models"]) == {*MODELS, "gbdt"}
    for metrics in results["models"].values():
        assert 0.5 < metrics["auc"] <= 1 and metrics["significance"] > 0 and 0 <= metrics["mass_dcorr_background"] <= 1
    assert (tmp_path / "out" / "mass_sculpting.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-c", code, "--out", tmp_path / "out"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not an empty folder" in bad.stderr
