"""``smartbkg-evaluate`` options: the shared list syntax, defaults and one-line errors."""

import pytest

from smartbkg.cli import evaluate_main
from smartbkg.report.cli import build_parser


def test_list_options_take_spaces_and_commas():
    args = build_parser().parse_args(["run", "--data", "a.parquet", "b,1.parquet", "--out", "r",
                                      "--skims", "x,y", "--methods", "sampling", "hard_cut",
                                      "--reweight-variables", "thrust,n_particles", "n_charged"])
    assert args.data == ["a.parquet", "b,1.parquet"] and args.skims == ["x", "y"]
    assert args.methods == ["sampling", "hard_cut"]
    assert args.reweight_variables == ["thrust", "n_particles", "n_charged"]
    defaults = build_parser().parse_args(["run", "--data", "d", "--out", "r"])
    assert defaults.skims is None and defaults.methods is None and defaults.reweight_variables is None


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "4294967296", "argument --seed: expected an integer in [0, 4294967295], got '4294967296'"),
    ("--folds", "1", "argument --folds: expected an integer >= 2, got '1'"),
    ("--batch-size", "0", "argument --batch-size: expected an integer >= 1, got '0'"),
    ("--methods", ",", "argument --methods: expected at least one non-empty value"),
])
def test_bad_options_are_one_line_errors(option, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        evaluate_main(["run", "--data", "d", "--out", str(tmp_path / "r"), option, value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err == f"error: smartbkg-evaluate: {message}\n"
