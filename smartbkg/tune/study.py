"""Optuna studies of filter networks: storage, workers, the trial budget, progress, best configuration.

A study lives in a folder named after it (``root/NAME``)::

    journal.log            the Optuna journal file (the default storage)
    data/                  the embedded sample, when the study trains on it (generated once)
    trial_0000/ ...        one ordinary run folder per trial (config.yaml, checkpoints,
                           TensorBoard, metrics, summary), see :mod:`smartbkg.train.loop`
    best_config.yaml       the best trial's resolved configuration (single objective), for
                           ``smartbkg-train --config``; it trains into ``best/``
    pareto_trial_0007.yaml one such file per trial of the Pareto front (several objectives)

Storage: by default Optuna's journal file (``JournalStorage`` with a ``JournalFileBackend``) in
the study folder, which several processes on one machine (or on a shared file system) can
write at once; any other path is taken as a journal file; a URL (``postgresql://...``,
``mysql://...``, ``sqlite:///...``) is an Optuna RDB storage, the way to run workers on many
machines. RDB storages run a heartbeat: a trial whose worker stops beating (killed, node lost)
is marked failed by the next worker that looks, and re-queued with its parameters by
``RetryHeartbeatStaleTrialCallback`` (``max_retry`` times). The journal file has no heartbeat; there a
trial whose process on the same machine no longer exists is failed and re-queued the same way
when a worker starts or looks for work.

The trial budget: ``n_trials`` is the study's total, over every run of the command and every
worker. A trial counts when it is complete, pruned, or failed and not re-queued; running and
queued trials hold their place. A worker starts trials while fewer than ``n_trials`` count and
then, on a heartbeat storage, waits for the running trials of other workers (one of them may
die and be re-queued) before it returns. Two workers that ask for the last place at the same
moment both get a trial from Optuna; the one with the higher number sees that the places before
it are taken and is failed at once with the attribute ``surplus`` and no parameters, and is not
counted. Re-running the same command therefore continues a study to ``n_trials`` in total; a
larger ``n_trials`` extends it. The study records its model, search space, objectives and skim;
opening it with others is an error.
"""

import json
import multiprocessing
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from ..errors import ConfigError, SmartBkgError
from ..train.config import RunConfig
from ..train.data import build_splits
from ..train.distributed import setup_distributed
from .objective import TrialObjective, check_objectives, directions
from .space import SearchSpace, default_space, load_space

PRUNERS = ("median", "hyperband", "none")
#: The study attribute holding what defines the study.
SETTINGS_ATTR = "smartbkg"


@dataclass
class TrialCounts:
    """Trials of a study by what they mean for the budget (see :mod:`smartbkg.tune.study`)."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    retried: int = 0
    surplus: int = 0

    @property
    def finished(self):
        """Trials that count as done (complete, pruned, and failed without a retry)."""
        return self.complete + self.pruned + self.failed

    @property
    def taken(self):
        """Places of the budget in use (finished, running and queued trials)."""
        return self.finished + self.running + self.waiting

    def line(self, n_trials):
        text = f"{self.finished}/{n_trials} trials: {self.complete} complete, {self.pruned} pruned, {self.failed} failed"
        extra = [f"{self.running} running"] * bool(self.running) + [f"{self.retried} retried"] * bool(self.retried)
        return text + (f" ({', '.join(extra)})" if extra else "")


def trial_counts(trials):
    """:class:`~smartbkg.tune.study.TrialCounts` of a list of ``optuna.trial.FrozenTrial``."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counts = TrialCounts()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            counts.complete += 1
        elif t.state == TrialState.PRUNED:
            counts.pruned += 1
        elif t.state == TrialState.RUNNING:
            counts.running += 1
        elif t.state == TrialState.WAITING:
            counts.waiting += 1
        elif t.user_attrs.get("surplus"):
            counts.surplus += 1
        elif t.number in retried:
            counts.retried += 1
        else:
            counts.failed += 1
    return counts


#: Tries to open an RDB storage whose tables another worker is creating at the same moment.
SCHEMA_ATTEMPTS = 5


def open_storage(url, study_dir, *, heartbeat=30, max_retry=3):
    """The Optuna storage of ``url`` (``None``: the journal file ``study_dir/journal.log``).

    A URL (``dialect://...``) gives an RDB storage with a heartbeat every ``heartbeat`` seconds
    (a trial is stale after three missed beats) and re-queues stale trials up to ``max_retry``
    times; anything else is a journal file path. An unreachable or malformed URL raises
    :class:`~smartbkg.errors.ConfigError` naming it (password hidden).
    """
    if url is None or "://" not in str(url):
        path = Path(study_dir) / "journal.log" if url is None else Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(f"cannot open the journal file {path}: {exc.strerror or exc}") from None
    import sqlalchemy

    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    driver_url = url
    if url.startswith("postgresql://") and not _importable("psycopg") and _importable("psycopg2"):
        driver_url = "postgresql+psycopg2://" + url[len("postgresql://"):]  # SQLAlchemy 2.1 defaults to psycopg 3
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat options are experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(driver_url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                                                  heartbeat_stale_trial_callback=_retry_callback(max_retry))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Workers that start together on a new database all create Optuna's tables; the
            # losers of that race see a unique violation or "relation already exists" and find
            # the tables there a moment later.
            if not _schema_race(exc) or attempt == SCHEMA_ATTEMPTS - 1:
                raise ConfigError(f"cannot use the storage {_safe_url(url)}: {_first_line(exc)}") from None
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigError(f"cannot use the storage {_safe_url(url)}: {_first_line(exc)}") from None


#: SQLSTATE codes of losing the race to create a table: unique_violation, duplicate_table, duplicate_object.
_RACE_SQLSTATES = {"23505", "42P07", "42710"}


def _schema_race(exc):
    """Whether a SQLAlchemy error is a lost race to create Optuna's tables (any IntegrityError, or
    a PostgreSQL error whose SQLSTATE says the table or object already exists)."""
    import sqlalchemy

    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code in _RACE_SQLSTATES


def open_study(name, storage, settings, *, sampler=None, pruner=None):
    """Create the study ``name`` in ``storage``, or load it; its stored settings must equal ``settings``.

    ``settings``: {"model", "space", "objectives", "skim"} (:func:`~smartbkg.tune.study.study_settings`); a study
    created with others raises :class:`~smartbkg.errors.ConfigError` saying what differs.
    """
    settings = json.loads(json.dumps(settings))
    try:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, sampler=sampler,
                                    pruner=pruner, directions=directions(settings["objectives"]))
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            study.set_user_attr(SETTINGS_ATTR, settings)
            stored = settings
    except Exception as exc:  # the storage's driver errors (connection lost ...) have no common base
        if isinstance(exc, SmartBkgError):
            raise
        raise ConfigError(f"cannot open study {name!r} in its storage: {_first_line(exc)}") from None
    if stored != settings:
        raise ConfigError(f"study {name!r} was created with {_difference(stored, settings)}: give the same "
                          "--model, --space, --objective and --skim, or a new --study name")
    return study


def study_settings(space, objectives, skim=None):
    """What defines a study (stored with it): model, search space, objectives, skim."""
    return {"model": space.model, "space": space.to_dict()["params"], "objectives": list(objectives), "skim": skim}


def make_pruner(name, epochs):
    """``median`` (Optuna's ``MedianPruner`` after 3 trials, from epoch 2 on),
    ``hyperband`` (``HyperbandPruner`` over 1 ... ``epochs`` epochs) or
    ``none``; an Optuna pruner object is returned as it is."""
    if not isinstance(name, str):
        return name
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)  # steps are 1-based epochs
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def run_study(config, *, n_trials, study_name, model=None, root="studies", storage=None, space=None,
              objectives=("speedup",), skim=None, pruner="median", workers=1, timeout=None, seed=0,
              heartbeat=30, max_retry=3, quiet=False, oracle=None):
    """Run (or continue) a study to ``n_trials`` trials in total and return it.

    Args:
        config: base :class:`~smartbkg.train.config.RunConfig` of every trial (data, epochs ...;
            ``out`` is ignored); the space's values override it.
        n_trials: the study's total number of trials (see :mod:`smartbkg.tune.study`).
        study_name: the study's name; its folder is ``root/study_name``.
        model: model name (default ``config.model.name``).
        storage: ``None`` (journal file in the study folder), a journal file path or an RDB URL.
        space: :class:`~smartbkg.tune.space.SearchSpace`, a dict or a YAML file
            (:func:`~smartbkg.tune.space.load_space`; default :func:`~smartbkg.tune.space.default_space`).
        objectives: names of :data:`smartbkg.tune.objective.OBJECTIVES`; several give a
            multi-objective study (Pareto front, no pruning).
        skim: the skim whose metrics count (default: the mean over the trained skims).
        pruner: ``median``, ``hyperband``, ``none`` or an Optuna pruner.
        workers: processes on this machine working on the study (this one and ``workers - 1``
            started ones, each with ``cpu_count // workers`` torch threads). They are started
            with ``spawn``, which re-imports the calling script: in a script, call
            ``run_study`` under ``if __name__ == "__main__":``.
        timeout: seconds after which no new trial is started (running ones finish).
        seed: seed of the TPE sampler (worker k uses ``seed + k``); trials train with
            ``train.seed`` of the config.
        heartbeat, max_retry: heartbeat interval (s) and retries of stale trials, RDB storages.
        quiet: no progress lines and no training output.
        oracle: {skim: Bayes-limit speedup} for the objective ``oracle_fraction``
            (:func:`~smartbkg.tune.objective.read_oracle`).

    Writes the best configuration(s) (:func:`~smartbkg.tune.study.write_best_configs`) and prints the best trial.
    """
    objectives = check_objectives(objectives)
    if "oracle_fraction" in objectives and not oracle:
        raise ConfigError("objective oracle_fraction needs the oracle speedups (--oracle FILE, e.g. "
                          "benchmarks/results/oracle.json)")
    model = model or config.model.name
    if not isinstance(space, SearchSpace):
        space = default_space(model) if space is None else load_space(space, model)
    elif space.model != model:
        raise ConfigError(f"the search space is for model {space.model!r}, not {model!r}")
    if n_trials < 1 or workers < 1:
        raise ConfigError(f"n_trials and workers must be >= 1, got {n_trials} and {workers}")
    study_dir = Path(root) / study_name
    base = _base_config(config, model, skim, study_dir)
    try:
        space.check(base)
    except ConfigError as exc:
        raise ConfigError(f"search space: {exc}") from None
    settings = study_settings(space, objectives, skim)
    make_pruner(pruner, base.train.epochs)
    job = {"base": base.to_dict(), "space": space.to_dict(), "objectives": list(objectives), "skim": skim,
           "study_name": study_name, "study_dir": str(study_dir), "storage": storage, "n_trials": n_trials,
           "deadline": None if timeout is None else time.time() + timeout, "seed": seed, "pruner": pruner,
           "heartbeat": heartbeat, "max_retry": max_retry, "quiet": quiet, "settings": settings,
           "threads": max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None,
           "verbosity": optuna.logging.get_verbosity(), "oracle": oracle}
    worker = _Worker(job, 0)
    if not quiet:
        print(f"study {study_name!r}: {settings['model']}, objective {', '.join(objectives)}, "
              f"{n_trials} trials, {workers} worker(s), storage {_describe(storage, study_dir)}")
    context = multiprocessing.get_context("spawn")
    others = [context.Process(target=_worker_main, args=(job, k)) for k in range(1, workers)]
    for process in others:
        process.start()
    try:
        worker.work()
    finally:
        for process in others:
            process.join()
    failed = [k for k, process in enumerate(others, 1) if process.exitcode]
    if failed and not quiet:
        print(f"warning: worker(s) {failed} ended with an error (see above)", file=sys.stderr)
    study = worker.study
    paths = write_best_configs(study, study_dir)
    if not quiet:
        print(best_report(study, n_trials, paths))
    return study


def write_best_configs(study, study_dir):
    """Write the best trial's config (``best_config.yaml``) or, with several objectives, one
    ``pareto_trial_NNNN.yaml`` per Pareto-front trial; returns the paths (none without a complete trial).

    Each file is the trial's resolved ``config.yaml`` with ``out`` set to ``study_dir/best``
    (``study_dir/best_NNNN``) and the progress output on: ``smartbkg-train --config FILE``
    repeats the trial (the same metrics on CPU).
    """
    study_dir = Path(study_dir)
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    single = len(study.directions) == 1
    trials = [study.best_trial] if single else study.best_trials
    paths = []
    for trial in sorted(trials, key=lambda t: t.number):
        config = RunConfig.from_file(Path(trial.user_attrs["run_dir"]) / "config.yaml")
        name = "best_config.yaml" if single else f"pareto_trial_{trial.number:04d}.yaml"
        out = study_dir / ("best" if single else f"best_{trial.number:04d}")
        config = config.with_overrides({"out": str(out), "train.quiet": False})
        paths.append(study_dir / name)
        config.to_yaml(paths[-1])
    return paths


def best_report(study, n_trials, paths=()):
    """Lines: the study's counts and its best trial(s) with values, t_NN, parameters and config file."""
    trials = study.get_trials(deepcopy=False)
    lines = [f"study {study.study_name!r}: {trial_counts(trials).line(n_trials)}"]
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return "\n".join(lines + ["no complete trial yet"])
    objectives = study.user_attrs[SETTINGS_ATTR]["objectives"]
    best = [study.best_trial] if len(objectives) == 1 else study.best_trials
    lines.append("best trial:" if len(best) == 1 else f"Pareto front ({len(best)} trials):")
    for trial in sorted(best, key=lambda t: t.number):
        lines.append(f"  trial {trial.number}: {_values(objectives, trial.values)}, t_NN "
                     f"{trial.user_attrs['t_nn_ms']:.3g} ms/event, best epoch {trial.user_attrs['best_epoch']}, "
                     f"{trial.user_attrs['run_dir']}")
        lines.append("    " + ", ".join(f"{k}={_show(v)}" for k, v in trial.params.items()))
    lines += [f"config: {path} (smartbkg-train --config {path})" for path in paths]
    return "\n".join(lines)


# ---------------------------------------------------------------------- workers
class _Worker:
    """One process working on the study: storage, data, objective and the loop of trials."""

    def __init__(self, job, index):
        self.job, self.index = job, index
        base = RunConfig.from_dict(job["base"])
        space = SearchSpace(job["space"]["model"], job["space"]["params"])
        self.study_dir = Path(job["study_dir"])
        self.storage = open_storage(job["storage"], self.study_dir, heartbeat=job["heartbeat"],
                                    max_retry=job["max_retry"])
        self.heartbeat = isinstance(self.storage, optuna.storages.RDBStorage)
        sampler = optuna.samplers.TPESampler(seed=job["seed"] + index)
        self.study = open_study(job["study_name"], self.storage, job["settings"], sampler=sampler,
                                pruner=make_pruner(job["pruner"], base.train.epochs))
        if job["threads"]:
            torch.set_num_threads(job["threads"])
        ctx = setup_distributed(base.train.device)
        if ctx.distributed:
            raise ConfigError("a study runs one process per worker: start workers with --workers or several "
                              "commands, not torchrun")
        splits = build_splits(base.data, self.study_dir, ctx=ctx, quiet=job["quiet"])
        if job["skim"] is not None and job["skim"] not in splits.skims:
            raise ConfigError(f"skim {job['skim']!r} is not among the trained skims {list(splits.skims)}")
        self.objective = TrialObjective(base, space, job["objectives"], self.study_dir, splits, ctx,
                                        skim=job["skim"], slot=self._may_run, oracle=job.get("oracle"))
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.retry = _retry_callback(job["max_retry"])

    def _may_run(self, number):
        """Whether trial ``number`` has a place in the budget (a re-queued trial always has)."""
        trials = self.study.get_trials(deepcopy=False)
        this = next(t for t in trials if t.number == number)
        if "failed_trial" in this.system_attrs:
            return True
        earlier = [t for t in trials if t.number < number]
        return trial_counts(earlier).taken < self.job["n_trials"]

    def work(self):
        n_trials, deadline = self.job["n_trials"], self.job["deadline"]
        progress = None if self.job["quiet"] else _Progress(n_trials)
        objective = self._tagged(self.objective)
        while True:
            self._fail_dead_trials()
            counts = trial_counts(self.study.get_trials(deepcopy=False))
            late = deadline is not None and time.time() > deadline
            if counts.waiting == 0 and counts.taken >= n_trials:
                if counts.running == 0 or late or not (self.heartbeat or self._local_running()):
                    return
                time.sleep(min(self.job["heartbeat"], 5))
                continue
            if late:
                return
            self.study.optimize(objective, n_trials=1, catch=(Exception,),
                                callbacks=[progress] if progress else None)

    def _tagged(self, objective):
        worker_id = self.worker_id

        def run(trial):
            trial.set_user_attr("worker", worker_id)
            return objective(trial)
        return run

    def _local_running(self):
        """Whether a running trial belongs to a live process on this machine (journal storage)."""
        host = socket.gethostname()
        return any(t.user_attrs.get("worker", "").split(":")[0] == host
                   for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _fail_dead_trials(self):
        """Fail and re-queue the running trials whose worker is gone.

        RDB storages: Optuna's heartbeat check. Journal file: trials of processes on this machine
        that no longer exist.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.heartbeat:
                optuna.storages.fail_stale_trials(self.study)
                return
            host = socket.gethostname()
            for trial in self.study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
                worker_host, _, pid = trial.user_attrs.get("worker", "").partition(":")
                if worker_host != host or _alive(int(pid)):
                    continue
                try:
                    if self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                        self.retry(self.study, trial)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass


def _worker_main(job, index):
    """Entry point of a worker process started by :func:`~smartbkg.tune.study.run_study`."""
    optuna.logging.set_verbosity(job["verbosity"])
    try:
        _Worker(job, index).work()
    except SmartBkgError as exc:
        print(f"error: worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)


class _Progress:
    """Optuna callback: one line per finished trial with the study's counts and the best so far."""

    def __init__(self, n_trials):
        self.n_trials = n_trials

    def __call__(self, study, trial):
        objectives = study.user_attrs[SETTINGS_ATTR]["objectives"]
        if trial.user_attrs.get("surplus"):
            print(f"trial {trial.number} not run: the study has its {self.n_trials} trials")
            return
        if trial.state == TrialState.COMPLETE:
            what = f"complete: {_values(objectives, trial.values)}"
        elif trial.state == TrialState.PRUNED:
            what = f"pruned {trial.user_attrs.get('pruned', '')}"
        else:
            what = f"failed: {trial.user_attrs.get('fail_reason', 'see the log')}"
        counts = trial_counts(study.get_trials(deepcopy=False))
        line = f"trial {trial.number} {what} | {counts.line(self.n_trials)}"
        if counts.complete and len(objectives) == 1:
            best = study.best_trial
            line += f" | best: trial {best.number}, {_values(objectives, best.values)}"
        elif counts.complete:
            line += f" | Pareto front: {len(study.best_trials)} trials"
        print(line, flush=True)


# ---------------------------------------------------------------------- helpers
def _base_config(config, model, skim, study_dir):
    """The trials' common config: the model, the skim, quiet training, the sample cached in the study."""
    values = config.to_dict()
    values["model"] = {"name": model, "options": values["model"]["options"] if config.model.name == model else {}}
    values["train"]["quiet"] = True
    values["out"] = None
    if config.data.path is None and config.data.cache_dir is None:
        values["data"]["cache_dir"] = str(study_dir / "data")
    if skim is not None:
        values["data"]["skims"] = values["data"]["skims"] or [skim]
    return RunConfig.from_dict(values)


def _retry_callback(max_retry):
    """Optuna's re-queueing of stale trials (an experimental class: its warning is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _values(objectives, values):
    return ", ".join(f"{name} {value:.4g}" for name, value in zip(objectives, values))


def _show(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _difference(stored, given):
    parts = []
    for key in ("model", "objectives", "skim"):
        if stored.get(key) != given.get(key):
            parts.append(f"{key} {stored.get(key)!r} (given: {given.get(key)!r})")
    a, b = stored.get("space") or {}, given.get("space") or {}
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if keys:
        parts.append(f"another search space (differing: {', '.join(keys)})")
    return "; ".join(parts)


def _describe(storage, study_dir):
    if storage is None:
        return str(Path(study_dir) / "journal.log")
    return _safe_url(storage) if "://" in str(storage) else str(storage)


def _safe_url(url):
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: show the scheme only
        return str(url).split("://")[0] + "://..."


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


