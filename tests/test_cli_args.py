import importlib
import subprocess
import sys

import pytest

from smartbkg import __version__
from smartbkg.cli_args import ArgumentParser, add_list_argument, integer
from smartbkg.errors import ConfigError

SCRIPTS = ("classify", "convert", "evaluate", "filter", "generate", "reweight", "train", "tune")


def _parser():
    parser = ArgumentParser(prog="smartbkg-x")
    parser.add_argument("inputs", nargs="*")
    add_list_argument(parser, "--skims")
    add_list_argument(parser, "--data", commas=False)
    parser.add_argument("--seed", type=integer(0, 9))
    return parser


@pytest.mark.parametrize("argv, skims, data", [
    (["--skims", "a,b"], ["a", "b"], None),
    (["--skims", "a", "b"], ["a", "b"], None),
    (["--skims", "a, b", "c", "--skims", "d"], ["a", "b", "c", "d"], None),
    (["--data", "x,1.parquet", "y.parquet"], None, ["x,1.parquet", "y.parquet"]),
])
def test_list_options_take_spaces_and_commas_for_names(argv, skims, data):
    args = _parser().parse_args(argv)
    assert args.skims == skims and args.data == data


@pytest.mark.parametrize("argv, message", [
    (["--skims", ","], "smartbkg-x: argument --skims: expected at least one non-empty value"),
    (["--seed", "10"], "smartbkg-x: argument --seed: expected an integer in [0, 9], got '10'"),
    (["--seed", "-1"], "expected an integer in [0, 9], got '-1'"),
    (["--nope"], "smartbkg-x: unrecognized arguments: --nope"),
])
def test_errors_are_config_errors(argv, message):
    with pytest.raises(ConfigError) as info:
        _parser().parse_args(argv)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_has_version_and_one_line_errors(script, capsys):
    main = getattr(importlib.import_module("smartbkg.cli"), f"{script}_main")
    for argv, status in ((["--version"], 0), (["--no-such-option"], 2)):
        with pytest.raises(SystemExit) as info:
            main(argv)
        out, err = capsys.readouterr()
        assert info.value.code == status
        if status == 0:
            assert out == f"smartbkg-{script} {__version__}\n" and err == ""
        else:
            assert out == "" and err.startswith(f"error: smartbkg-{script}: ") and err.count("\n") == 1


def test_usage_errors_through_the_console_script():
    code = "import sys; from smartbkg.cli import convert_main; convert_main(sys.argv[1:])"
    bad = subprocess.run([sys.executable, "-c", code, "--out"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "error: smartbkg-convert: argument --out: expected one argument\n"
