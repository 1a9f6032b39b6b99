"""``smartbkg-tune``: a small study from the command line, and one-line errors with exit status 2."""

import pytest
import yaml

from smartbkg.cli import tune_main
from smartbkg.tune.cli import build_parser


def run(argv, capsys):
    """Exit status, stderr and stdout of ``smartbkg-tune argv``."""
    with pytest.raises(SystemExit) as info:
        tune_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return info.value.code, captured.err, captured.out


def test_study_from_the_command_line_then_a_changed_space_is_refused(tune_sample, space_file, tmp_path, capsys):
    argv = ["--data", tune_sample, "--skims", "tau_generic", "--model", "deepsets", "--epochs", 1, "--trials", 2,
            "--study", "cli", "--dir", tmp_path, "--pruner", "hyperband", "--objective", "auc"]
    code, err, out = run([*argv, "--space", space_file()], capsys)
    assert code == 0, err
    assert "trial 1 complete: auc" in out and "2/2 trials: 2 complete" in out
    assert f"config: {tmp_path / 'cli' / 'best_config.yaml'}" in out
    best = yaml.safe_load((tmp_path / "cli" / "best_config.yaml").read_text())
    assert best["model"]["options"]["layers"] == 2 and best["train"]["monitor"] == "auc"
    code, err, _ = run([*argv, "--space", space_file({"model.options.layers": 3})], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: study 'cli' was created with another search space (differing: model.options.layers)")


def test_print_space_shows_the_resolved_space(space_file, capsys):
    code, _, out = run(["--space", space_file(), "--print-space"], capsys)
    assert code == 0
    space = yaml.safe_load(out)
    assert space["model"] == "deepsets" and space["params"]["model.options.layers"] == 2
    assert "train.weight_decay" not in space["params"] and space["params"]["train.lr"]["log"] is True


@pytest.mark.parametrize("case, message", [
    ("model", "error: unknown model 'nosuchnet'; known:"),
    ("parameter", "error: search space: parameter 'model.options.nonsense' = 1: model 'deepsets': got an "
                  "unexpected keyword argument"),
    ("storage", "error: cannot use the storage postgresql://nobody:***@127.0.0.1:1/none: "),
    ("dialect", "error: cannot use the storage nosuchdb://x: "),
    ("missing", "error: smartbkg-tune: --trials and --study required"),
    ("trials", "error: smartbkg-tune: argument --trials: expected an integer >= 1, got '0'"),
    ("seed", "error: smartbkg-tune: argument --seed: expected an integer in [0, 4294967295], got '4294967296'"),
    ("worker seed", "error: smartbkg-tune: worker k seeds its sampler with --seed + k, which must stay <= 4294967295"),
    ("no oracle", "error: objective oracle_fraction needs the oracle speedups (--oracle FILE"),
    ("bad oracle", "error: "),  # the path, then: cannot read the oracle speedups
])
def test_bad_input_is_one_line_and_exit_2(case, message, space_file, tmp_path, capsys):
    argv = {"model": ["--model", "nosuchnet", "--trials", 1, "--study", "s"],
            "parameter": ["--space", space_file({"model.options.nonsense": {"type": "int", "low": 1, "high": 2}}),
                          "--trials", 1, "--study", "s"],
            "storage": ["--model", "deepsets", "--trials", 1, "--study", "s",
                        "--storage", "postgresql://nobody:secret@127.0.0.1:1/none"],
            "dialect": ["--model", "deepsets", "--trials", 1, "--study", "s", "--storage", "nosuchdb://x"],
            "missing": ["--model", "deepsets"],
            "trials": ["--model", "deepsets", "--trials", 0, "--study", "s"],
            "seed": ["--model", "deepsets", "--trials", 1, "--study", "s", "--seed", 2**32],
            "worker seed": ["--model", "deepsets", "--trials", 1, "--study", "s", "--seed", 2**32 - 1,
                            "--workers", 2],
            "no oracle": ["--model", "deepsets", "--trials", 1, "--study", "s", "--objective", "oracle_fraction"],
            "bad oracle": ["--model", "deepsets", "--trials", 1, "--study", "s", "--objective", "oracle_fraction",
                           "--oracle", tmp_path / "missing.json"]}[case]
    code, err, _ = run([*argv, "--dir", tmp_path], capsys)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    if case == "bad oracle":
        assert "missing.json: cannot read the oracle speedups" in err
    assert "secret" not in err


def test_list_options_take_spaces_and_commas():
    args = build_parser().parse_args(["--data", "a.parquet", "b,1.parquet", "--skims", "x,y", "z",
                                      "--objective", "speedup", "t_nn"])
    assert args.data == ["a.parquet", "b,1.parquet"] and args.skims == ["x", "y", "z"]
    assert args.objective == ["speedup", "t_nn"]
    assert build_parser().parse_args(["--objective", "auc,speedup"]).objective == ["auc", "speedup"]
