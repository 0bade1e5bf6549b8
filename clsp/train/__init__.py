"""Contrastive training of CLSP models (stage one InfoNCE, stage two multi-positive InfoNCE)."""

from clsp.train.config import DataConfig, LossConfig, OptimConfig, TrainConfig, load_config, load_run_config
from clsp.train.loop import EXIT_PREEMPTED, TrainResult, train

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "TrainConfig", "load_config", "load_run_config", "train", "TrainResult",
           "EXIT_PREEMPTED"]
