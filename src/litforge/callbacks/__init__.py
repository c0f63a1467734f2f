"""Callbacks litforge adds to every run; each is usable on its own with a plain ``Trainer``."""

from litforge.callbacks.learning_curves import LearningCurves
from litforge.callbacks.model_summary import EagerModelSummary
from litforge.callbacks.perf_summary import PerfSummary
from litforge.callbacks.plain_progress_bar import PlainProgressBar
from litforge.callbacks.plateau_stop import PlateauStop
from litforge.callbacks.prediction_writer import CSVPredictionWriter
from litforge.callbacks.rich_progress_bar import RunProgressBar
from litforge.callbacks.run_checkpoint import RunCheckpoint

__all__ = [
    "CSVPredictionWriter",
    "EagerModelSummary",
    "LearningCurves",
    "PerfSummary",
    "PlainProgressBar",
    "PlateauStop",
    "RunCheckpoint",
    "RunProgressBar",
]
