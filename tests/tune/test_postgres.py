"""Several workers on one study in a real PostgreSQL server: the trial budget is shared exactly,
and a worker killed with SIGKILL mid-trial has its trial failed by the heartbeat and retried by
another worker.

The server comes from ``SMARTBKG_TEST_POSTGRES_URL`` (``.ci/run`` starts a throw-away one). Without
it the tests skip, except under CI (``CI`` set), where they fail.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from smartbkg.tune import trial_counts

URL = os.environ.get("SMARTBKG_TEST_POSTGRES_URL")
WORKER = "from smartbkg.cli import tune_main; import sys; tune_main(sys.argv[1:])"


@pytest.fixture
def postgres():
    """The server URL; skip (or, under CI, fail) without a reachable server."""
    reason = None
    if not URL:
        reason = "no PostgreSQL server: set SMARTBKG_TEST_POSTGRES_URL=postgresql://USER@HOST:PORT/DB (.ci/run starts one)"
    else:
        try:
            import sqlalchemy

            sqlalchemy.create_engine(URL.replace("postgresql://", "postgresql+psycopg2://", 1)).connect().close()
        except Exception as exc:  # any driver or connection error means: no server
            reason = f"PostgreSQL server {URL} unreachable: {str(exc).splitlines()[0]}"
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    if reason:
        pytest.skip(reason)
    return URL


def _start(args):
    """A worker process (one torch thread, as every test process)."""
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _study(url, name):
    return optuna.load_study(study_name=name, storage=url.replace("postgresql://", "postgresql+psycopg2://", 1))


def _command(tune_sample, space_file, tmp_path, url, name, trials, epochs):
    return ["--data", tune_sample, "--skims", "tau_generic", "--model", "deepsets", "--space", space_file(),
            "--epochs", epochs, "--trials", trials, "--study", name, "--dir", tmp_path, "--storage", url,
            "--pruner", "none", "--heartbeat", 1]


def test_two_workers_share_the_budget_exactly(postgres, tune_sample, space_file, tmp_path):
    name = f"two-workers-{uuid.uuid4().hex[:8]}"
    command = _command(tune_sample, space_file, tmp_path, postgres, name, trials=4, epochs=2)
    workers = [_start([*command, "--seed", k]) for k in (0, 1)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = _study(postgres, name).get_trials()
    counts = trial_counts(trials)
    assert (counts.complete, counts.finished, counts.running, counts.waiting) == (4, 4, 0, 0)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    # every counted trial ran once, in its own run folder, and the two workers shared them
    assert len({t.number for t in done}) == 4
    assert sorted(t.user_attrs["run_dir"] for t in done) == sorted(
        str(tmp_path / name / f"trial_{t.number:04d}") for t in done)
    assert all((tmp_path / name / f"trial_{t.number:04d}" / "summary.json").is_file() for t in done)
    assert len({t.user_attrs["worker"] for t in done}) == 2
    # a trial beyond the budget (two workers asking for the last place at once) never trained
    assert all(t.user_attrs.get("surplus") and not t.params for t in trials if t.state == TrialState.FAIL)


def test_a_killed_workers_trial_is_failed_by_the_heartbeat_and_retried(postgres, tune_sample, space_file, tmp_path):
    name = f"killed-{uuid.uuid4().hex[:8]}"
    command = _command(tune_sample, space_file, tmp_path, postgres, name, trials=2, epochs=4)
    victim = _start(command)
    victim_id = f":{victim.pid}"
    deadline = time.time() + 120
    running = []
    while not running and time.time() < deadline and victim.poll() is None:
        time.sleep(0.2)
        try:
            running = [t for t in _study(postgres, name).get_trials(states=(TrialState.RUNNING,))
                       if t.user_attrs.get("worker", "").endswith(victim_id) and t.params]
        except KeyError:  # the study is not created yet
            pass
    assert running, victim.communicate()
    victim.send_signal(signal.SIGKILL)
    victim.communicate()  # waits, and closes its pipes
    killed = running[0].number
    survivor = _start([*command, "--seed", 1])
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    trials = {t.number: t for t in _study(postgres, name).get_trials()}
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    # the retry keeps what the killed trial had sampled (it was killed before sampling the rest)
    assert trials[killed].params.items() <= retries[0].params.items()
    assert retries[0].user_attrs["worker"].endswith(f":{survivor.pid}")
    counts = trial_counts(list(trials.values()))
    assert (counts.complete, counts.retried, counts.finished, counts.running) == (2, 1, 2, 0)
    assert "2/2 trials: 2 complete, 0 pruned, 0 failed (1 retried)" in out


def test_workers_starting_together_on_a_new_database_all_open_it(postgres):
    """Workers that start at once on an empty database race to create Optuna's tables; each one
    opens the storage (the losers of the race retry) instead of failing with a unique violation."""
    import sqlalchemy

    name = f"race_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg2://", 1),
                                     isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = postgres.rsplit("/", 1)[0] + "/" + name
    code = "from smartbkg.tune.study import open_storage; import sys; open_storage(sys.argv[1], '.'); print('ok')"
    try:
        workers = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for _ in range(4)]
        results = [w.communicate(timeout=120) for w in workers]
        assert [out for out, _ in results] == ["ok\n"] * 4, [err for _, err in results]
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
