"""Studies end to end on tiny trials: pruning, the best config reproducing its trial, resuming to
N trials in total, failed trials with their reason, a dead worker's trial retried, several
objectives with the measured network time."""

import json
import re
import socket
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from smartbkg.errors import ConfigError, DataError
from smartbkg.train.config import RunConfig
from smartbkg.train.loop import Trainer
from smartbkg.tune import load_space, open_storage, run_study, trial_counts
from smartbkg.tune.objective import read_oracle


def _space(tiny_space, **params):
    return load_space({"model": "deepsets", "params": {**tiny_space["params"], **params}})


def test_study_prunes_writes_a_reproducible_best_config_and_continues_to_n_trials(base_config, tiny_space,
                                                                                   tmp_path, capsys):
    space = _space(tiny_space, **{"train.lr": {"type": "float", "low": 1e-7, "high": 1e-2, "log": True}})
    base_config = base_config.with_overrides({"train.epochs": 3})  # pruning stops a trial before its last epoch
    root, name = tmp_path / "studies", "prune"
    # a good and a hopeless first two trials, and a pruner that must stop the second at its first report
    # (the median pruner's verdict on them depends on how a barely trained set model ranks events)
    study = optuna.create_study(study_name=name, storage=open_storage(None, root / name), direction="maximize")
    study.enqueue_trial({"train.lr": 5e-3, "loss.name": "entropy", "model.options.hidden": 16})
    study.enqueue_trial({"train.lr": 1e-7, "loss.name": "entropy", "model.options.hidden": 8})

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    pruner = PruneTrialOne()
    study = run_study(base_config, n_trials=3, study_name=name, root=root, space=space, pruner=pruner)
    trials = study.get_trials()
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert re.fullmatch(r"after epoch [12]: val/speedup = [0-9.]+", trials[1].user_attrs["pruned"])
    assert trial_counts(trials).finished == 3
    printed = capsys.readouterr().out
    assert "trial 1 pruned after epoch" in printed and "best trial:" in printed

    # the best config trains to exactly the trial's figures (CPU training is deterministic)
    best = study.best_trial
    trial_dir = root / name / f"trial_{best.number:04d}"
    config = RunConfig.from_file(root / name / "best_config.yaml")
    assert config.out == str(root / name / "best") and config.train.monitor == "speedup"
    summary = Trainer(config.with_overrides({"out": str(tmp_path / "again"), "train.quiet": True})).fit()
    assert summary == json.loads((trial_dir / "summary.json").read_text())
    history = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert history[summary["best_epoch"] - 1]["val/speedup"] == pytest.approx(best.value, rel=1e-12)

    # the same call again runs nothing; a larger total adds one trial
    run_study(base_config, n_trials=3, study_name=name, root=root, space=space, pruner=pruner, quiet=True)
    study = run_study(base_config, n_trials=4, study_name=name, root=root, space=space, pruner=pruner, quiet=True)
    numbers = [t.number for t in study.get_trials()]
    assert numbers == [0, 1, 2, 3] and trial_counts(study.get_trials()).finished == 4
    assert sorted(p.name for p in (root / name).glob("trial_*")) == [f"trial_000{i}" for i in range(4)]


def test_pareto_study_with_measured_network_time_and_a_failed_trial(base_config, tiny_space, tmp_path, capsys):
    root, name = tmp_path / "studies", "pareto"
    blocker = root / name / "trial_0000" / "checkpoints" / "last.pt"  # trial 0's folder holds a run already
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"")
    study = run_study(base_config, n_trials=3, study_name=name, root=root, space=_space(tiny_space),
                      objectives=("speedup_measured", "t_nn"))
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and "already holds a run" in trials[0].user_attrs["fail_reason"]
    assert "trial 0 failed: ConfigError:" in capsys.readouterr().out
    counts = trial_counts(trials)
    assert (counts.complete, counts.failed, counts.finished) == (2, 1, 3)
    for trial in trials[1:]:
        config = RunConfig.from_file(root / name / f"trial_{trial.number:04d}" / "config.yaml")
        assert config.train.t_nn == trial.user_attrs["t_nn_ms"] == trial.values[1] > 0  # measured t_NN in use
        history = json.loads((root / name / f"trial_{trial.number:04d}" / "metrics.json").read_text())
        assert trial.values[0] == history[trial.user_attrs["best_epoch"] - 1]["val/speedup"]
    front = sorted(study.best_trials, key=lambda t: t.number)
    assert sorted(p.name for p in (root / name).glob("pareto_trial_*.yaml")) == [
        f"pareto_trial_{t.number:04d}.yaml" for t in front]


def test_a_dead_local_workers_trial_is_failed_and_retried(base_config, tiny_space, tmp_path):
    """Journal storage (no heartbeat): a running trial of a process of this machine that no longer
    exists is failed when a worker starts, and re-queued with its parameters."""
    root, name = tmp_path / "studies", "dead"
    space = _space(tiny_space)
    study = optuna.create_study(study_name=name, storage=open_storage(None, root / name), direction="maximize")
    trial = study.ask()
    values = space.suggest(trial)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{int(dead.stdout)}")
    study = run_study(base_config, n_trials=1, study_name=name, root=root, space=space, quiet=True)
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == first.params
    assert RunConfig.from_file(root / name / "trial_0001" / "config.yaml").loss.name == values["loss.name"]
    counts = trial_counts(study.get_trials())
    assert (counts.finished, counts.retried) == (1, 1)


def test_oracle_fraction_study_with_event_features(base_config, tiny_space, tmp_path):
    """The objective is the validation speedup over the oracle's (averaged over the counted skims)
    at the best epoch; trials with the skim emulation time their model with its event-feature encoder."""
    config = base_config.with_overrides({"data.event_features": True})
    oracle = {"tau_generic": 3.0, "radiative": 15.0}
    study = run_study(config, n_trials=2, study_name="fraction", root=tmp_path, space=_space(tiny_space),
                      objectives=("oracle_fraction",), oracle=oracle, quiet=True)
    for trial in study.get_trials():
        history = json.loads((tmp_path / "fraction" / f"trial_{trial.number:04d}" / "metrics.json").read_text())
        best = history[trial.user_attrs["best_epoch"] - 1]
        assert trial.value == pytest.approx(best["val/speedup/tau_generic"] / 3.0)
        assert trial.user_attrs["t_nn_ms"] > 0
    with pytest.raises(ConfigError, match=r"oracle speedup of skim\(s\) \['tau_generic'\]"):
        run_study(config, n_trials=3, study_name="fraction", root=tmp_path, space=_space(tiny_space),
                  objectives=("oracle_fraction",), oracle={"radiative": 15.0}, quiet=True)


def test_read_oracle_takes_the_benchmark_results_or_a_plain_mapping(tmp_path):
    results = tmp_path / "oracle.json"
    results.write_text(json.dumps({"command": "x", "skims": {"tau_generic": {"speedup": 3.3, "auc": 0.98}}}))
    assert read_oracle(results) == {"tau_generic": 3.3}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"radiative": 15}))
    assert read_oracle(plain) == {"radiative": 15.0}
    plain.write_text(json.dumps({"radiative": -1}))
    with pytest.raises(DataError, match="positive number"):
        read_oracle(plain)
    with pytest.raises(DataError, match="cannot read"):
        read_oracle(tmp_path / "missing.json")


class _DriverError(Exception):
    def __init__(self, pgcode):
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


def test_only_a_lost_race_to_create_the_tables_is_retried():
    """Workers creating Optuna's tables together: the losers' unique violation or "relation already
    exists" (psycopg2 pgcode / psycopg sqlstate) is a race to retry; other SQL errors are not."""
    import sqlalchemy

    from smartbkg.tune.study import _schema_race

    def error(kind, code):
        return kind("CREATE TABLE alembic_version ...", {}, _DriverError(code))

    assert _schema_race(error(sqlalchemy.exc.IntegrityError, "23505"))
    assert _schema_race(error(sqlalchemy.exc.ProgrammingError, "42P07"))  # duplicate_table
    assert _schema_race(error(sqlalchemy.exc.ProgrammingError, "42710"))  # duplicate_object
    assert not _schema_race(error(sqlalchemy.exc.ProgrammingError, "42601"))  # syntax error
    assert not _schema_race(error(sqlalchemy.exc.ProgrammingError, None))
