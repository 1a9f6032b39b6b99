import json
import subprocess
import sys

import numpy as np


def run(*args):
    code = "import sys; from smartbkg.cli import reweight_main; reweight_main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_example_end_to_end_writes_a_report(tmp_path):
    out = tmp_path / "report"
    done = run("--example", "--events", 800, "--out", out, "--seed", 3)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "report.json").read_text())
    assert summary["test_events"] == {"a": 400, "b": 400}
    assert summary["settings"]["sample_a"]["StringZ:aLund"] == 0.8
    assert summary["auc_before"]["auc"] > 0.55  # the tunes differ visibly at 800 events
    html = (out / "report.html").read_text()
    assert html.count("<img src=\"data:image/png;base64,") == len(summary["chi2_before"]) + 1
    assert "second-classifier AUC" in done.stdout


def test_bad_input_is_one_line(tmp_path):
    a, b, empty = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "empty.csv"
    rng = np.random.default_rng(0)
    a.write_text("x,y\n" + "\n".join(f"{u},{v}" for u, v in rng.normal(size=(50, 2))))
    b.write_text("x,z\n" + "\n".join(f"{u},{v}" for u, v in rng.normal(size=(50, 2))))
    empty.write_text("x,y\n")
    cases = [(("--a", a, "--b", b), "different features"), (("--a", a, "--b", empty), "sample B has no events"),
             (("--a", a), "give both samples"), (("--a", a, "--b", tmp_path / "nope.csv"), "input not found"),
             (("--example", "--a", a), "either --example")]
    for args, message in cases:
        done = run(*args, "--out", tmp_path / "out")
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_graph_model_classifier_on_decay_trees(tmp_path):
    """The example with a smartbkg graph model (DeepSets on the decay trees) as the classifier."""
    out = tmp_path / "report"
    done = run("--example", "--events", 600, "--out", out, "--seed", 4, "--classifier", "deepsets")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "report.json").read_text())
    assert summary["settings"]["classifier"] == "deepsets" and summary["test_events"] == {"a": 300, "b": 300}
    assert 0 < summary["weights"]["n_eff_fraction"] <= 1 and summary["weights"]["mean"] > 0
    bad = run("--a", tmp_path / "x.csv", "--b", tmp_path / "y.csv", "--out", tmp_path / "o", "--classifier", "nope")
    assert bad.returncode == 2 and "--classifier 'nope'" in bad.stderr
