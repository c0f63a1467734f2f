"""What litforge installs in a process before it trains: quieter Lightning logs and lean hook dispatch.

Each entry point installs it once (the ``litforge`` command, a search's trial, benchmarks), never the
engine's constructors; ``uninstall`` undoes it (tests).
"""

from __future__ import annotations

import logging
import warnings

from litforge._compat import lean_hooks
from litforge.resilience.checkpoint_types import allow_plain_data

_QUIET_INFO = (
    "💡 Tip",
    # litforge's summary replaces Lightning's default one by design; Lightning says so on every run
    "Trainer already configured with model summary callbacks: [<class 'litforge.",
)
_LOGGERS = {
    "lightning.pytorch.utilities.rank_zero": lambda record: (
        not str(record.getMessage()).startswith(_QUIET_INFO)
    ),
    "lightning.pytorch.trainer.connectors.checkpoint_connector": (
        lambda record: "`weights_only` was not set" not in str(record.getMessage())
    ),
}
_IGNORED_WARNINGS = (
    # litforge writes config.yaml into the run folder before the CSV logger creates it.
    r"Experiment logs directory .* exists and is not empty",
    # a resumed run's checkpoints/ holds its checkpoints by design; a new run never reuses a full folder
    # (refused unless --resume or --overwrite)
    r"Checkpoint directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\)",
    r"LightningCLI's args parameter is intended",
    r"'set_vital' is deprecated",  # torchdata's loader
    # test/predict need none of fit's resume-only callbacks (RNGState); predictions.csv numbers rows itself.
    r"Be aware that when using `ckpt_path`, callbacks used to create",
    r"Couldn't infer the batch indices fetched from your dataloader",
    # validate/test/predict write into <run>/test etc. by design: the run's best/last stay where they are
    r"The dirpath has changed from",
)
_installed: dict[str, object] = {}


def install() -> None:
    """Install once per process (a second call does nothing)."""
    if _installed:
        return
    _installed["warnings"] = list(warnings.filters)
    for name, keep in _LOGGERS.items():
        logging.getLogger(name).addFilter(keep)
    for message in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    _installed["lean_hooks"] = lean_hooks.install()  # Lightning's per-step hooks without the no-op calls
    allow_plain_data()  # weights-only loading reads the paths, numpy arrays, datetimes a module saves


def uninstall() -> None:
    """Undo ``install``."""
    if not _installed:
        return
    for name, keep in _LOGGERS.items():
        logging.getLogger(name).removeFilter(keep)
    warnings.filters[:] = _installed["warnings"]  # type: ignore[index]
    lean_hooks.uninstall()
    _installed.clear()
