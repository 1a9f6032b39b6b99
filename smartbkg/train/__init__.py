"""The one training loop: configuration, trainer, checkpoints, distributed training, run records.

    from smartbkg.train import RunConfig, Trainer, train
    summary = train(RunConfig.from_file("run.yaml"))

See :mod:`smartbkg.train.loop` for the loop and the run folder, :mod:`smartbkg.train.config` for
the options, ``smartbkg-train --help`` for the command line.
"""

from .config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from .loop import Trainer, train

__all__ = ["DataConfig", "LossConfig", "ModelConfig", "RunConfig", "TrainConfig", "Trainer", "train"]
