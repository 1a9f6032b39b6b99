"""The benchmark scripts run end to end at tiny sizes and write what they promise.

Not benchmarks: nothing here looks at how fast anything is (figures on a loaded CI machine
mean nothing). The tests keep the scripts from rotting between the occasions that measure with
them: every model builds and steps, bf16 autocast and torch.compile run, and the JSON holds
finite positive rates, the machine and the command.
"""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import numpy as np

from smartbkg.data import read_events
from smartbkg.filter import Filter
from smartbkg.metrics import perfect_speedup
from smartbkg.models import build_model
from smartbkg.models.layers import count_parameters, default_vocab_size

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name, *args):
    """Run ``benchmarks/<name>.py`` with ``args``; returns its stdout (fails with its stderr)."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_models_benchmark_every_model_with_bf16_and_compile(tmp_path):
    out = tmp_path / "models.json"
    run_script("models", "--events", 40, "--batch-size", 16, "--train-batch-size", 16,
               "--particles", 20, "--repeat", 1, "--max-seconds", 0.01, "--source", "synthetic",
               "--bf16", "--compile", "deepsets", "--out", out)
    result = json.loads(out.read_text())
    assert result["machine"]["device"] == "cpu" and result["options"]["bf16"] is True
    [sample] = result["samples"]
    assert sample["events"] == 40
    runs = {(r["model"], r["compiled"]): r for r in sample["results"]}
    names = {"gatgap32", "ref_pyg_gatgap32", "gatgap32_gatv2", "gatgap128", "deepsets",
             "transformer", "lorentz", "ref_part"}
    assert set(runs) == {(name, False) for name in names} | {("deepsets", True)}
    for run in runs.values():
        for mode in ("infer", "train"):
            assert positive(run[f"{mode}_events_per_s"]), (run["model"], mode)
            assert run[f"{mode}_ms_per_event"] == pytest.approx(1e3 / run[f"{mode}_events_per_s"])
    compiled = runs["deepsets", True]
    assert compiled["infer_graphs_compiled"] >= 1 and compiled["train_graphs_compiled"] >= 1
    assert compiled["infer_recompiles_while_timed"] == compiled["train_recompiles_while_timed"] == 0
    # the package models are the registry's, at the sizes the README names
    assert runs["transformer", False]["parameters"] == count_parameters(
        build_model("transformer", num_skims=1, vocab_size=default_vocab_size()))
    assert runs["gatgap32", False]["parameters"] == runs["ref_pyg_gatgap32", False]["parameters"]
    assert runs["transformer", False]["parameters"] == runs["ref_part", False]["parameters"]


def test_models_benchmark_refuses_to_compile_a_model_it_does_not_run(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "models.py"), "--models", "deepsets",
                           "--compile", "gatgap32", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--compile names models that are not run: ['gatgap32']" in done.stderr


def test_data_pipeline_benchmark(tmp_path):
    out = tmp_path / "data.json"
    run_script("data_pipeline", "--events", 3000, "--pyg-events", 300, "--batch-size", 64,
               "--row-group", 512, "--buffer-events", 1024, "--repeat", 1, "--out", out)
    figures = json.loads(out.read_text())["figures"]
    assert figures["events"] == 3000
    for name in ("pipeline_stream", "pipeline_memory", "collate_fast", "collate_pyg"):
        assert figures[name], name
    assert positive(figures["collate_ratio"])


def test_generate_benchmark(tmp_path):
    out = tmp_path / "generate.json"
    run_script("generate", "--events", 140, "--out", out)
    result = json.loads(out.read_text())
    assert result["events"] == 140
    assert all(positive(float(v)) for v in result["events_per_s_per_core"].values())
    assert len(result["per_type"]) == 7


def test_train_benchmark(tmp_path):
    out = tmp_path / "train.json"
    run_script("train", "--models", "deepsets", "--events", 400, "--epochs", 2, "--threads", 1,
               "--cache-dir", tmp_path / "cache", "--out", out)
    run = json.loads(out.read_text())["models"]["deepsets"]
    assert run["train_events"] + run["val_events"] == 400
    assert [epoch["epoch"] for epoch in run["epochs"]] == [1, 2]
    assert positive(run["train_events_per_s"]) and 0 <= run["best_val_auc"] <= 1


def test_readers_benchmark(tmp_path):
    out = tmp_path / "readers.json"
    run_script("readers", "--events", 300, "--hepmc-events", 50, "--repeat", 1, "--out", out)
    results = json.loads(out.read_text())["results"]
    assert len(results) == 5
    assert all(r["events_per_s"] > 0 and r["particles_per_event"] > 0 for r in results.values())


def test_gpu_script_runs_every_step_at_tiny_size_on_cpu(tmp_path):
    """benchmarks/gpu.sh, the one call for a lent GPU, with every step at a tiny size on the CPU."""
    out = tmp_path / "gpu"
    env = {**os.environ, "SMARTBKG_BENCH_DEVICE": "cpu", "SMARTBKG_BENCH_SIZE": "tiny", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), str(out)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = json.loads((out / "steps.json").read_text())
    expected = {"models", "train", "feed"} | ({"filter"} if (BENCHMARKS / "filter.py").exists() else set())
    assert {s["step"] for s in steps} == expected and all(s["status"] == 0 for s in steps)
    environment = json.loads((out / "environment.json").read_text())
    assert environment["device"] == "cpu" and environment["torch"] and "gpu.sh" in environment["command"]
    feed = json.loads((out / "feed_cpu.json").read_text())
    [result] = feed["results"]
    assert positive(result["load_events_per_s"]) and positive(result["train_events_per_s"])
    assert 0 <= result["bucketed_padding_fraction"] <= result["padding_fraction"] < 1
    assert json.loads((out / "models_cpu.json").read_text())["samples"]
    assert json.loads((out / "train_cpu.json").read_text())["models"]["deepsets"]["epochs"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_script_refuses_to_measure_the_cpu_as_a_gpu(tmp_path):
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), str(tmp_path / "gpu")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 1 and "no CUDA device visible" in done.stderr
    assert not (tmp_path / "gpu").exists()


def test_filter_benchmark(tmp_path):
    out = tmp_path / "filter.json"
    run_script("filter", "--events", 200, "--run-events", 200, "--repeat", 1, "--batch-size", 64,
               "--models", "gatgap32,transformer,deepsets_emulation", "--cache-dir", tmp_path / "cache", "--out", out)
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"gatgap32", "transformer", "deepsets_emulation"}
    # the run with the skim emulation filters with it (the filter computes it while preparing)
    [run] = (tmp_path / "cache").glob("run-deepsets-*")
    assert "event_features: true" in (run / "config.yaml").read_text()
    for run in result["models"].values():
        median = run["median"]
        assert median["events"] == 200 and 0 < median["network_share"] <= 1.5
        assert positive(median["cpu_ms_per_event"]) and positive(run["events_per_s_wall"])


def test_closure_benchmark(tmp_path):
    out = tmp_path / "closure.json"
    stdout = run_script("closure", "--events", 300, "--workers", 1, "--run-events", 400, "--run-epochs", 1,
                        "--run-skims", "tau_generic", "--cache-dir", tmp_path / "cache", "--out", out)
    result = json.loads(out.read_text())
    assert result["checks"]["label_mismatches"] == 0 and result["checks"]["max_abs_p_difference"] == 0
    assert result["comparisons"] == 1 + len(result["distributions"]["tau_generic"]) >= 11
    assert result["verdict"] in stdout and sum(result["pulls"]["counts"]) == result["pulls"]["bins"]


def test_export_benchmark_times_onnxruntime_and_pytorch(tmp_path):
    out = tmp_path / "export.json"
    run_script("export", "--models", "deepsets", "--events", 6, "--source", "synthetic",
               "--repeat", 1, "--batch-size", 4, "--out", out)
    result = json.loads(out.read_text())
    assert result["events"] == 6 and result["machine"]["threads"] == 1
    assert result["command"].startswith("python benchmarks/export.py --models deepsets")
    [run] = result["models"].values()
    for figures in (run["event_ms"], run["batch_events_per_s"]):
        assert set(figures) == {"onnxruntime", "pytorch"}
        assert all(positive(value) for value in figures.values())


def test_oracle_benchmark(tmp_path):
    out = tmp_path / "oracle.json"
    run_script("oracle", "--events", 600, "--runs", 32, "--bootstrap", 3,
               "--skims", "tau_generic,hadronic_b", "--out", out)
    result = json.loads(out.read_text())
    assert result["events"] == 600 and result["runs"] == 32 and "oracle.py" in result["command"]
    tau = result["skims"]["tau_generic"]
    assert set(tau["by_K"]) == {"8", "16", "32"} and set(tau["by_K_crossfit"]) == {"4", "8", "16"}
    assert 0 < tau["retention"] < 1 and 0.5 < tau["auc"] <= 1
    assert all(positive(tau[key]) for key in ("speedup", "speedup_err", "perfect_limit"))
    assert all(positive(v) and v <= tau["perfect_limit"] for v in tau["by_K"].values())
    # a skim without passing events at this size is reported as skipped, not dropped
    hadronic = result["skims"]["hadronic_b"]
    assert "speedup" in hadronic or "skipped" in hadronic


def test_limits_benchmark(tmp_path):
    out = tmp_path / "limits.json"
    run_script("limits", "--models", "deepsets", "--skims", "tau_generic", "--train-events", 300, "--epochs", 1,
               "--threads", 1, "--cache-dir", tmp_path / "cache", "--config-dir", tmp_path / "configs", "--out", out)
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert row["skim"] == "tau_generic" and row["model"] == "deepsets" and row["train_events"] == 300
    assert 0 <= row["auc"] <= 1 and positive(row["speedup"]) and positive(row["oracle_speedup"])
    assert row["fraction_of_oracle"] == pytest.approx(row["speedup"] / row["oracle_speedup"])
    assert row["fraction_of_perfect"] == pytest.approx(row["speedup"] / row["perfect_limit"])
    assert 0 < row["test_passing"] < row["test_events"] and row["test_passing"] == int(row["test_passing"])
    assert (tmp_path / "configs" / "deepsets_300.yaml").is_file() and "gpu_command" in result


def test_limits_benchmark_ablation_with_event_features(tmp_path):
    """--ablate takes the information out of every split: without PDG ids, kinematics and edges the
    network still sees the event features, so it still separates (tau_generic AUC well above 0.5)."""
    out = tmp_path / "limits.json"
    run_script("limits", "--models", "deepsets", "--skims", "tau_generic", "--train-events", 600, "--epochs", 2,
               "--threads", 1, "--event-features", "--ablate", "pdg,kinematics,edges,event_type",
               "--cache-dir", tmp_path / "cache", "--config-dir", tmp_path / "configs", "--out", out)
    [row] = json.loads(out.read_text())["rows"]
    assert row["event_features"] is True and row["ablate"] == ["pdg", "kinematics", "edges", "event_type"]
    assert row["auc"] > 0.8
    config = (tmp_path / "configs" / "deepsets_event_features_no_pdg_no_kinematics_no_edges_no_event_type_600.yaml")
    assert "event_features: true" in config.read_text()


def test_calibration_forms_and_independent_test_on_a_kept_limits_run(tmp_path):
    """limits.py --keep-runs keeps the run folder; calibration_forms.py fits every form on its
    validation split and scores it on its test split; independent_test.py applies its filter (with
    the skim emulation) to a fresh sample."""
    run_script("limits", "--models", "deepsets", "--skims", "tau_generic", "--train-events", 600, "--epochs", 1,
               "--threads", 1, "--event-features", "--cache-dir", tmp_path / "cache", "--keep-runs", tmp_path / "runs",
               "--out", tmp_path / "limits.json")
    run = tmp_path / "runs" / "deepsets_event_features_600"
    assert (run / "checkpoints" / "best.pt").is_file()
    out = tmp_path / "forms.json"
    run_script("calibration_forms", run, "--threads", 1, "--out", out)
    rows = json.loads(out.read_text())["rows"]
    assert [r["form"] for r in rows] == ["exp", "skewed_sigmoid", "sigmoid"]
    for r in rows:
        assert positive(r["test_speedup"]) and 0 < r["test_kish_efficiency"] <= 1
        assert r["fraction_of_oracle"] == pytest.approx(r["test_speedup"] / json.loads(
            (tmp_path / "limits.json").read_text())["rows"][0]["oracle_speedup"])
    assert rows[2]["params"] == {}
    # the same run on an independent sample
    out = tmp_path / "independent.json"
    run_script("independent_test", run, "--events", 800, "--seed", 99, "--workers", 1, "--chunk", 300,
               "--bootstrap", 5, "--threads", 1, "--out", out)
    [row] = json.loads(out.read_text())["rows"]
    assert row["skim"] == "tau_generic" and row["test_events"] == 800 and 0 < row["passing"] < 800
    assert 0.5 < row["auc"] <= 1 and positive(row["speedup"]) and row["speedup_err"] > 0
    assert row["fraction_of_perfect"] == pytest.approx(row["speedup"] / row["perfect_limit"])
    # the skim emulation is timed and charged to the filter: the same probabilities cost more
    assert row["emulation_ms_per_event"] > 0 and row["speedup_with_emulation_time"] < row["speedup"]
    assert positive(row["speedup_recalibrated"])
    # runs that prepare alike share each chunk's preparation (the skim emulation runs once)
    shutil.copytree(run, tmp_path / "copy")
    filters = {"run": Filter.from_run(run), "copy": Filter.from_run(tmp_path / "copy")}
    [sample] = (tmp_path / "cache").iterdir()
    table = read_events(sample)[:700]
    logits = load_script("independent_test").score_chunks(filters, table, 300)
    assert filters["run"].timing["prepare"] > 0 and filters["copy"].timing["prepare"] == 0
    np.testing.assert_array_equal(logits["copy"], logits["run"])
    np.testing.assert_allclose(logits["run"], Filter.from_run(run).logits(table), rtol=1e-5, atol=1e-5)


def test_recalibrated_speedup_fits_on_one_half_and_scores_the_other():
    """Logits that are the labels reach the perfect classifier's speedup once calibrated on the
    other half; logits without information gain nothing (a calibration fitted to noise can only
    lose on the other half); events without a logit keep
    p = 1 and so cost their full simulation."""
    recalibrated_speedup = load_script("independent_test").recalibrated_speedup
    timings = {"t_fast": 0.08, "t_nn": 0.63, "t_slow": 97.04}
    y = (np.random.default_rng(1).random(20_000) < 0.01).astype(float)
    perfect = perfect_speedup(y.mean(), max_weight=100.0, **timings)
    assert recalibrated_speedup(10 * y - 5, y, 0, 100.0, timings) == pytest.approx(perfect, rel=0.1)
    noise = np.random.default_rng(2).normal(size=len(y))
    assert recalibrated_speedup(noise, y, 0, 100.0, timings) < 1.05
    half_unscored = np.where(np.arange(len(y)) % 2 == 0, np.nan, 10 * y - 5)
    assert recalibrated_speedup(half_unscored, y, 0, 100.0, timings) < 0.6 * perfect


def load_script(name):
    """Import ``benchmarks/<name>.py`` (with the benchmarks folder importable, as when it runs)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_binned_oracle_of_the_labels_themselves_is_the_perfect_classifier():
    binned_oracle = load_script("emulation_information").binned_oracle
    y = (np.random.default_rng(0).random(4000) < 0.05).astype(float)
    everyone = np.zeros(4000, dtype=int)
    # groups that are the labels: q = 1 and 0 (with no pseudo-events), p = 1 and the floor
    perfect = binned_oracle(y.astype(int), y, everyone, splits=3, prior_events=0)
    assert len(perfect) == 6
    assert np.mean(perfect) == pytest.approx(perfect_speedup(y.mean(), max_weight=100.0), rel=0.05)
    assert max(perfect) <= perfect_speedup(0.04, max_weight=100.0)
    # shrinking towards the mean costs a little; a key without information gives every event the
    # same p: no better than keeping all
    assert np.mean(binned_oracle(y.astype(int), y, everyone, splits=3)) < np.mean(perfect)
    assert binned_oracle(everyone, y, everyone, splits=2) == pytest.approx([1.0] * 4, abs=0.05)
    assert binned_oracle(np.zeros(2, int), np.array([1.0, 0]), np.zeros(2, int), splits=1) == [None, None]


def test_emulation_information_refuses_a_skim_without_candidates():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "emulation_information.py"), "--smeared-draws", "2",
                           "--smeared-skims", "radiative"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "radiative not among" in done.stderr


def test_emulation_information_benchmark(tmp_path):
    out = tmp_path / "information.json"
    stdout = run_script("emulation_information", "--events", 3000, "--seed", 5, "--first", 2500, "--workers", 1,
                        "--splits", 2, "--in-flight-draws", 2, "--radiative-draws", "2,8", "--smeared-draws", 2,
                        "--smeared-skims", "hadronic_b,semileptonic_b", "--out", out)
    result = json.loads(out.read_text())
    for skim, row in result["smeared"].items():
        (r,) = row["smeared"]
        assert skim in ("hadronic_b", "semileptonic_b") and r["draws"] == 2 and positive(r["ms_per_event_all_skims"])
        assert 0 <= r["passing_at_zero"] <= row["passing"] and r["events_with_a_count"] < 2500
    semileptonic = result["smeared"]["semileptonic_b"]
    assert semileptonic["passing"] > 5 and semileptonic["smeared"][0]["passing_at_zero"] < semileptonic["passing"]
    assert semileptonic["smeared"][0]["expected_candidates"] > 0.5 * semileptonic["passing"]
    assert positive(semileptonic["smeared"][0]["speedup_as_q"])
    radiative = result["radiative"]
    assert radiative["passing"] > 10 and [r["draws"] for r in radiative["probability"]] == [2, 8]
    for r in radiative["probability"]:
        # the probabilities add up to about the passes of the sample (one detector run)
        assert r["expected_passes"] == pytest.approx(radiative["passing"], rel=0.4)
        assert positive(r["speedup_as_q"]) and positive(r["speedup_binned"]["mean"]) and positive(r["ms_per_event"])
        assert r["speedup_as_q"] > radiative["speedup_ideal_decision"]["mean"]
    assert [r["skim"] for r in result["rows"]] == ["hadronic_b", "semileptonic_b", "charm_dstar"]
    for r in result["rows"]:
        over = r["over_in_flight_decays"]
        assert r["events"] == 2500 and r["passing"] >= r["passing_without_ideal_candidate"] \
            >= max(r["passing_without_any_expected_candidate"], over["passing_without_any_expected_candidate"]) >= 0
        for speedups in (r["speedup_ideal_decision"], r["speedup_ideal_decision_and_expected"],
                         over["speedup_ideal_decision_and_expected"]):
            assert speedups["missing"] == 4 or positive(speedups["mean"])
        assert over["draws"] == 2 and positive(over["ms_per_event"])
        assert set(r["unexplained_passes_per_run"]) == {"nominal", "resolution only", "identification only",
                                                        "ideal, other in-flight decays"}
        assert all(0 <= v <= 3000 for v in r["unexplained_passes_per_run"].values())
    assert "semileptonic_b" in stdout and "emulation_information.py" in result["command"]
