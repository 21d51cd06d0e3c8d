"""Training packed populations: configs, optimizers, losses, the trainer."""

from topowire.train.config import TrainConfig
from topowire.train.trainer import (
    ModelSpec,
    evaluate_module,
    model_specs,
    results_line,
    run_id,
    train_module,
    train_pack,
    train_population,
)

__all__ = ["TrainConfig", "ModelSpec", "model_specs", "run_id", "train_pack", "train_module", "evaluate_module",
           "train_population", "results_line"]
