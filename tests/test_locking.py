import os
import signal
import subprocess
import sys

import pytest

from smartbkg.errors import ConfigError
from smartbkg.locking import LOCK_FILE, locked_folder


def test_second_writer_is_refused_until_the_first_ends(tmp_path):
    out = tmp_path / "a" / "run"
    with locked_folder(out):
        assert (out / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError) as info:
            with locked_folder(out):
                pass
        assert str(info.value) == (f"output folder {out} is in use by another smartbkg process (pid {os.getpid()}); "
                                   "wait for it to end or choose another folder")
    with locked_folder(out):  # released on exit
        pass


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    code = ("import sys, time; from smartbkg.locking import locked_folder\n"
            "with locked_folder(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(ConfigError, match=f"pid {child.pid}"):
            with locked_folder(tmp_path):
                pass
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with locked_folder(tmp_path):
        pass


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "exists and is not a folder"),
    (lambda p: None, "cannot create output folder"),
])
def test_impossible_folders_are_one_line_errors(tmp_path, make, message):
    target = tmp_path / "file"
    make(target)
    path = target if message.startswith("exists") else target / "sub"
    if not message.startswith("exists"):
        target.write_text("x")  # a file where a parent folder should be
    with pytest.raises(ConfigError, match=message):
        with locked_folder(path):
            pass
