"""Weights & Biases logging that goes offline by itself when there is nothing to log in with.

litforge fit --config configs/loggers/wandb.yaml           # offline without an API key; `wandb sync` later
WANDB_API_KEY=... litforge fit --config configs/loggers/wandb.yaml --trainer.logger.init_args.log_model all
"""

from __future__ import annotations

import netrc
import os
import warnings
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

from litforge.errors import UsageError

INSTALL_HINT = "pip install 'litforge[loggers]'"


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with ``offline`` decided from the environment when not given.

    Offline when ``WANDB_MODE`` is ``offline``/``disabled`` or no API key is found (``WANDB_API_KEY`` or a
    ``~/.netrc`` entry for the W&B host, which ``wandb login`` writes). Offline runs are written under
    ``save_dir/wandb/offline-run-*`` and uploaded later with ``wandb sync <folder>``.

    Checkpoints (``log_model``) can only be uploaded online: Lightning raises when ``offline=True`` and
    ``log_model`` are combined. Here an *automatically* chosen offline mode turns ``log_model`` off with a
    warning (the checkpoints stay in the run folder); an explicit ``offline: true`` with ``log_model`` is a
    configuration error (exit 2).

    Args:
        offline: ``None`` (default) decides from the environment as above; ``True``/``False`` forces it.
        log_model: ``False``, ``True`` (checkpoints at the end of training) or ``"all"`` (every save).
        **kwargs: everything else of Lightning's ``WandbLogger`` (``project``, ``name``, ``save_dir``, ...).
    """

    def __init__(
        self,
        offline: bool | None = None,
        log_model: Literal["all"] | bool = False,
        project: str | None = None,
        name: str | None = None,
        save_dir: str = ".",
        **kwargs: Any,
    ) -> None:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UsageError(f"the W&B logger needs wandb: {INSTALL_HINT}") from None
        if offline and log_model:
            raise UsageError(
                f"trainer.logger: WandbLogger offline=True cannot upload checkpoints (log_model={log_model!r}); "
                "set log_model: false (checkpoints stay in the run folder) or go online"
            )
        if offline is None:
            offline = wandb_should_be_offline()
            if offline and log_model:
                warnings.warn(
                    "W&B is offline (WANDB_MODE=offline or no API key): log_model is turned off; "
                    "the checkpoints stay in the run folder",
                    stacklevel=2,
                )
                log_model = False
        os.makedirs(save_dir, exist_ok=True)
        super().__init__(
            offline=offline, log_model=log_model, project=project, name=name, save_dir=save_dir, **kwargs
        )


def wandb_should_be_offline() -> bool:
    """True when ``WANDB_MODE`` asks for it or no W&B API key is configured."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return True
