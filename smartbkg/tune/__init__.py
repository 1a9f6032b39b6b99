"""Optuna hyperparameter studies on the one training loop::

    from smartbkg.train import RunConfig
    from smartbkg.tune import run_study
    study = run_study(RunConfig.from_dict({"data": {"path": ["shards/"]}, "train": {"epochs": 5}}),
                      model="gatgap", n_trials=20, study_name="gatgap-speedup")

:mod:`smartbkg.tune.space` defines the search spaces, :mod:`smartbkg.tune.objective` what a trial
optimises and how it is pruned, :mod:`smartbkg.tune.study` storages, workers, the trial budget
and the best configuration; ``smartbkg-tune`` (``smartbkg.tune.cli``) is the command line.
"""

from .objective import OBJECTIVES, PruningCallback, TrialObjective, measure_inference_time
from .space import MODEL_SPACES, TRAINING_SPACE, SearchSpace, default_space, load_space
from .study import best_report, open_storage, open_study, run_study, trial_counts, write_best_configs

__all__ = ["MODEL_SPACES", "OBJECTIVES", "TRAINING_SPACE", "PruningCallback", "SearchSpace", "TrialObjective",
           "best_report", "default_space", "load_space", "measure_inference_time", "open_storage", "open_study",
           "run_study", "trial_counts", "write_best_configs"]
