"""Experiment trackers beyond the default TensorBoard + CSV (see ``docs/tracking.md``).

litforge fit --config configs/hf_minilm.yaml --config configs/loggers/wandb.yaml
"""

from litforge.loggers.wandb import WandbLogger

__all__ = ["WandbLogger"]
