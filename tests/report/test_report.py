"""smartbkg-evaluate end to end on a small embedded-sample run: the files, every number of
report.json recomputed from the arrays it came from, the HTML in a real headless browser, bad input."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy.stats import chi2 as chi2_distribution
from sklearn.metrics import roc_auc_score

from smartbkg.cli import evaluate_main
from smartbkg.data.event_variables import DISCRETE, VARIABLES
from smartbkg.data.parquet import read_parquet, write_parquet
from smartbkg.report.analysis import DEFAULT_SEEN
from smartbkg.simulation import produce
from smartbkg.train.cli import main as train

SKIM = "tau_generic"
ORACLE = {"skims": {SKIM: {"speedup": 3.0, "speedup_err": 0.2, "perfect_limit": 5.8}}}


def _cli(*args):
    """Run smartbkg-evaluate in a subprocess through the console-script wrapper."""
    code = "import sys; from smartbkg.cli import evaluate_main; evaluate_main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A one-epoch deepsets run on 3000 embedded events, 2000 other events to evaluate on, and
    the report of smartbkg-evaluate (with an oracle file)."""
    root = tmp_path_factory.mktemp("evaluate")
    produce(root / "train", 3000, seed=1)
    produce(root / "test", 2000, seed=2)
    assert train(["--data", str(root / "train"), "--skims", SKIM, "--model", "deepsets", "--epochs", "1",
                  "--out", str(root / "run"), "--quiet"]) == 0
    (root / "oracle.json").write_text(json.dumps(ORACLE))
    result = _cli(root / "run", "--data", root / "test", "--out", root / "report", "--oracle", root / "oracle.json",
                  "--bins", "8")
    assert result.returncode == 0, result.stderr
    return root, result.stdout


def test_report_files_and_side_by_side_table(made):
    root, stdout = made
    out = root / "report"
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == {SKIM}
    for name in report["figures"][SKIM].values():
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert len(report["figures"][SKIM]) >= 8
    page = (out / "report.html").read_text()
    assert page.count("<img ") == len(report["figures"][SKIM]) and "data:image/png;base64," in page
    assert not re.search(r"(src|href)=['\"](https?:|file:|//)", page)  # nothing fetched
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["skim", "method", "speedup"]
    for method in ("importance sampling", "threshold + reweighting", "hard cut, no weights"):
        row = next(line for line in lines if method in line)
        assert f"{report['results'][SKIM]['methods'][_key(method)]['speedup']:.3f}" in row
    methods = report["results"][SKIM]["methods"]
    assert methods["hard_cut"]["verdict"] == "biased"  # the hard cut without weights fails closure
    assert len(report["options"]["seen"]) + len(report["options"]["unseen"]) == len(VARIABLES) >= 10


def _key(label):
    return {"importance sampling": "sampling", "threshold + reweighting": "threshold_reweighting",
            "hard cut, no weights": "hard_cut"}[label]


def test_every_number_is_recomputed_from_the_arrays(made):
    root, _ = made
    report = json.loads((root / "report" / "report.json").read_text())
    arrays = dict(np.load(root / "report" / "arrays.npz"))
    calibration = json.loads((root / "run" / "calibration.json").read_text())[SKIM]
    expected = _expected(report, arrays, calibration)
    # the numbers outside the skim's results: event counts, and inputs echoed from the run and options
    assert report["events"] == {"read": 2000, "invalid": 0, "dropped_empty": 2000 - len(arrays[f"{SKIM}/y"]),
                                "evaluated": len(arrays[f"{SKIM}/y"])}
    config = yaml.safe_load((root / "run" / "config.yaml").read_text())
    assert report["timings"] == {k: config["train"][k] for k in ("t_fast", "t_nn", "t_slow")}
    assert report["options"] == {"target_fnr": 0.1, "seen": list(DEFAULT_SEEN), "folds": 2, "seed": 0,
                                 "unseen": [v for v in VARIABLES if v not in DEFAULT_SEEN], "closure_bins": 8,
                                 "methods": ["sampling", "threshold_reweighting", "hard_cut"], "heatmap_size": 25,
                                 "variables": list(VARIABLES), "alpha": 0.05}
    got = dict(_flatten(report["results"][SKIM]))
    want = dict(_flatten(expected))
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            assert got[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        elif isinstance(value, list) and value and not isinstance(value[0], str):
            np.testing.assert_allclose(got[key], value, rtol=1e-8, atol=1e-12, err_msg=key)
        else:
            assert got[key] == value, key


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}/{i}")
    elif isinstance(value, list):
        yield prefix, [float(v) for v in value] if value and not isinstance(value[0], str) else value
    else:
        yield prefix, value


def _expected(report, arrays, calibration):
    """Every number of report.json for the skim, from the per-event arrays, in plain numpy."""
    t = report["timings"]
    t1, t2, t3 = t["t_fast"] + t["t_nn"] + t["t_slow"], t["t_fast"] + t["t_nn"], t["t_fast"] + t["t_slow"]
    options = report["options"]
    x, y, w = arrays[f"{SKIM}/logits"], arrays[f"{SKIM}/y"], arrays[f"{SKIM}/weight"]
    variables = {name: arrays[f"variables/{name}"] for name in VARIABLES}
    passing = y == 1
    eps = report["results"][SKIM]["eps"]  # an input: the run's retention
    with open(f"{report['run']}/summary.json") as summary:
        assert eps == json.load(summary)["retention"][SKIM]
    max_weight = calibration["max_weight"]
    a, b = calibration["params"]["a"], calibration["params"]["b"]

    def p_exp(a, b):
        return np.maximum(np.exp(np.minimum(a * (x - b), 0)), 1 / max_weight)

    def speedup(f_tp, f_fp, a_eff):
        kept = eps * f_tp + (1 - eps) * f_fp
        return t3 * a_eff / (kept * t1 + (1 - kept) * t2)

    def mean(values, mask):
        return (w[mask] @ values[mask]) / w[mask].sum()

    def kish(weights):
        return weights.sum() ** 2 / (weights**2).sum()

    assert calibration["form"] == "exp"
    p = arrays[f"{SKIM}/p"]
    np.testing.assert_allclose(p, p_exp(a, b), rtol=1e-12)
    keep = arrays[f"{SKIM}/sampling_keep"]
    np.testing.assert_array_equal(keep, np.random.default_rng(options["seed"]).random(len(p)) < p)

    n1, n0 = kish(w[passing]), kish(w[~passing])
    auc = roc_auc_score(y, x, sample_weight=w)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    perfect = t3 / (eps * t1 + (1 - eps) * t2)
    oracle = ORACLE["skims"][SKIM]
    out = {
        "events": {"total": len(y), "passing": int(passing.sum()), "pass_fraction": w @ y / w.sum()},
        "eps": eps,
        "auc": {"value": auc, "error": np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2)
                                                + (n0 - 1) * (q2 - auc**2)) / (n1 * n0))},
        "calibration": calibration,
        "limits": {"perfect": perfect,
                   "perfect_floored": t3 / (eps * t1 + (1 - eps) * (t1 / max_weight + t2 * (1 - 1 / max_weight))),
                   "oracle": oracle},
    }
    edges = {}
    for name, v in variables.items():
        q = np.quantile(v[passing], np.linspace(0, 1, options["closure_bins"] + 1))
        centres = np.unique(np.round(q))
        edges[name] = np.r_[centres - 0.5, centres[-1] + 0.5] if name in DISCRETE else np.unique(q)

    def method(keep, c, f_tp, f_fp, a_eff, kish_efficiency, extra):
        closures = {}
        for name, v in variables.items():
            def h(mask, weights):
                return np.histogram(v[mask], bins=edges[name], weights=weights[mask])[0]
            ref, sampled = h(passing, w), h(passing & keep, w / c)
            var = h(passing, w**2 * (1 - c) / c)
            used = var > 0
            chi2 = float(np.sum((sampled - ref)[used] ** 2 / var[used]))
            closures[name] = {"chi2": chi2, "ndf": int(used.sum()), "chi2_ndf": chi2 / used.sum(),
                              "p_value": chi2_distribution.sf(chi2, used.sum()), "edges": list(edges[name]),
                              "reference": list(ref), "reference_err": list(np.sqrt(h(passing, w**2))),
                              "sampled": list(sampled), "sampled_err": list(np.sqrt(h(passing & keep, (w / c) ** 2))),
                              "difference_err": list(np.sqrt(var))}
        pulls = []
        for c_ in closures.values():
            err = np.array(c_["difference_err"])
            pulls.append((np.array(c_["sampled"]) - c_["reference"])[err > 0] / err[err > 0])
        pulls = np.concatenate(pulls)
        worst = max(closures, key=lambda k: closures[k]["chi2_ndf"])
        failing = [k for k in closures if closures[k]["p_value"] < 0.05 / len(closures)]
        kept_fraction = eps * f_tp + (1 - eps) * f_fp
        kept_pass = passing & keep
        value = speedup(f_tp, f_fp, a_eff)
        return {"speedup": value, "a_eff": a_eff, "kept_fraction": kept_fraction,
                "kish_efficiency": kish_efficiency, "n_eff_per_kept": eps * a_eff / kept_fraction, **extra,
                "draw": {"kept": int(keep.sum()), "kept_passing": int(kept_pass.sum()),
                         "n_eff": kish(w[kept_pass] / c[kept_pass])},
                "closure": closures,
                "worst_closure": {"variable": worst, "chi2_ndf": closures[worst]["chi2_ndf"],
                                  "min_p_value": min(c_["p_value"] for c_ in closures.values()),
                                  "seen_chi2_ndf": max(closures[k]["chi2_ndf"] for k in options["seen"]),
                                  "unseen_chi2_ndf": max(closures[k]["chi2_ndf"] for k in options["unseen"])},
                "verdict": "biased" if failing else "closes", "failing_variables": failing,
                "pulls": {"n": pulls.size, "mean": pulls.mean(), "std": pulls.std()},
                "fraction_of_perfect": value / perfect,
                "fraction_of_oracle": {"value": value / oracle["speedup"],
                                       "error": value / oracle["speedup"] ** 2 * oracle["speedup_err"]}}

    a_eff = w[passing].sum() / (w[passing] / p[passing]).sum()
    out["methods"] = {"sampling": method(
        keep, p, mean(p, passing), mean(p, ~passing), a_eff,
        w[passing].sum() ** 2 / ((w[passing] ** 2 / p[passing]).sum() * p[passing].sum()), {})}

    threshold = report["results"][SKIM]["threshold"]["value"]
    below = w[passing & (x < threshold)].sum() / w[passing].sum()
    above_candidates = np.sort(x[passing & (x > threshold)])
    assert below <= options["target_fnr"]
    assert w[passing & (x < above_candidates[0])].sum() / w[passing].sum() > options["target_fnr"]
    kept = arrays[f"{SKIM}/kept"]
    np.testing.assert_array_equal(kept, x >= threshold)
    out["threshold"] = {"value": threshold, "target_fnr": options["target_fnr"], "seen": options["seen"],
                        "unseen": options["unseen"], "folds": options["folds"]}
    for name in ("threshold_reweighting", "hard_cut"):
        c = arrays[f"{SKIM}/{name}_probability"]
        assert c.min() >= 1 / max_weight and c.max() <= 1
        f_tp, f_fp = mean(kept.astype(float), passing), mean(kept.astype(float), ~passing)
        kept_pass = passing & kept
        n_eff = kish(w[kept_pass] / c[kept_pass])
        out["methods"][name] = method(kept, c, f_tp, f_fp, n_eff / kish(w[passing]), n_eff / kish(w[kept_pass]),
                                      {"false_negative_rate": 1 - f_tp, "false_positive_rate": f_fp})

    a_axis = np.geomspace(0.02, 20.0, options["heatmap_size"])
    b_axis = np.linspace(*np.quantile(x, [0.01, 0.99]), options["heatmap_size"])
    def sampling_speedup(pp):
        return speedup(mean(pp, passing), mean(pp, ~passing), w[passing].sum() / (w[passing] / pp[passing]).sum())

    grid = np.array([[sampling_speedup(p_exp(ai, bj)) for bj in b_axis] for ai in a_axis])
    i, j = np.unravel_index(np.argmax(grid), grid.shape)
    out["heatmap"] = {"a": list(a_axis), "b": list(b_axis), "speedup": [list(row) for row in grid],
                      "best": {"a": a_axis[i], "b": b_axis[j], "speedup": grid[i, j]},
                      "fitted": {"a": a, "b": b, "speedup": out["methods"]["sampling"]["speedup"]}}
    return out


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("chromium is missing in CI (.ci/run installs the Debian package)")
    pytest.skip("no chromium on this machine (Debian: apt-get install chromium); CI runs this test")


def _browser(chromium, *args):
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=120)


def test_html_renders_every_figure_in_a_headless_browser(made, tmp_path):
    import matplotlib.image

    chromium = _chromium()
    root, _ = made
    page = (root / "report" / "report.html").read_text()
    # DOM: after loading, a script marks how many images there are and how many did not decode
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", "<script>window.addEventListener('load', () => {"
                                  "const images = Array.from(document.images);"
                                  "document.body.dataset.images = images.length;"
                                  "document.body.dataset.broken = images.filter("
                                  "i => !(i.complete && i.naturalWidth > 0)).length;});</script></body>"))
    dom = _browser(chromium, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr
    n_images = int(re.search(r'data-images="(\d+)"', dom.stdout).group(1))
    assert n_images == page.count("<img ") >= 8
    assert re.search(r'data-broken="(\d+)"', dom.stdout).group(1) == "0"
    # screenshot of the report itself: text, tables and coloured figures, not a blank page
    shot = tmp_path / "shot.png"
    result = _browser(chromium, "--window-size=1300,2600", f"--screenshot={shot}",
                      (root / "report" / "report.html").as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1300)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.03  # not blank
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.3
    assert colourful.mean() > 0.005  # the coloured figures are drawn (broken images are grey icons)


def _error(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([str(a) for a in args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_gets_one_line_errors(made, tmp_path, capsys):
    root, _ = made
    unfinished = tmp_path / "unfinished"
    shutil.copytree(root / "run", unfinished)
    (unfinished / "calibration.json").unlink()
    assert "has no calibration.json" in _error(capsys, unfinished, "--data", root / "test", "--out", tmp_path / "a")
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    table = read_parquet(next((root / "test").glob("*.parquet")))
    write_parquet(table.select_skims([]), unlabelled / "events.parquet")
    assert "no labels of skim" in _error(capsys, root / "run", "--data", unlabelled, "--out", tmp_path / "b")
    assert "exists and is not empty" in _error(capsys, root / "run", "--data", root / "test", "--out", root / "report")
    assert "--fnr" in _error(capsys, root / "run", "--data", root / "test", "--out", tmp_path / "c", "--fnr", "x")
    assert "unknown event variable" in _error(capsys, root / "run", "--data", root / "test", "--out", tmp_path / "d",
                                              "--reweight-variables", "thrust,mass")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
