import json
import os

import pytest

from smartbkg.cli import generate_main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate_main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_generate_command(tmp_path, capsys):
    code, out, _ = run(["--events", "30", "--output", str(tmp_path), "--seed", "2", "--types", "mixed,ssbar",
                        "--mix", "equal", "--quiet"], capsys)
    assert code == 0 and out == ""
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["events"] == {"mixed": 15, "ssbar": 15, "all": 30}
    assert meta["config"]["mix"] == "equal" and not meta["preprocessed"]
    code, out, _ = run(["--events", "14", "--output", str(tmp_path / "b"), "--types", "taupair", "charged"], capsys)
    assert code == 0 and "wrote 14 events in 1 shard(s)" in out and "tau_generic" in out


@pytest.mark.parametrize("argv, message", [
    (["--events", "0", "--output", "x"], "--events"),
    (["--events", "ten", "--output", "x"], "--events"),
    (["--events", "10"], "--output"),
    (["--events", "10", "--output", "x", "--types", "bbbar"], "bbbar"),
    (["--events", "10", "--output", "x", "--mix", "flat"], "--mix"),
    (["--events", "10", "--output", "x", "--workers", "0"], "--workers"),
    (["--events", "10", "--output", "x", "--seed", "-3"], "--seed"),
    (["--events", "10", "--output", "x", "--events-per-shard", "0"], "--events-per-shard"),
])
def test_bad_arguments_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_output_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    code, _, err = run(["--events", "5", "--output", str(target)], capsys)
    assert code == 2 and "not a directory" in err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_that_cannot_be_created(capsys):
    # /proc refuses new directories, even to root.
    code, out, err = run(["--events", "10", "--output", "/proc/foo", "--quiet"], capsys)
    assert code == 2 and out == ""
    assert err == "error: cannot create output directory /proc/foo: No such file or directory\n"


def test_non_empty_output_is_refused(tmp_path, capsys):
    (tmp_path / "foo.txt").write_text("keep me")
    code, _, err = run(["--events", "10", "--output", str(tmp_path), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"output directory {tmp_path} is not empty" in err and f"{tmp_path}-2" in err
    assert [p.name for p in tmp_path.iterdir()] == ["foo.txt"]
