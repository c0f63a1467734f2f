"""Check a checkpoint before validate/test/predict use it: readable, weights only, and fitting the model.

litforge test --ckpt_path other_model.ckpt
litforge: error: --ckpt_path other_model.ckpt does not fit LitModel: model.0.weight is (256, 16) in the
checkpoint but (128, 16) in the model (2 tensors differ) ...
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch.nn.parameter import UninitializedParameter

from litforge._compat.torch_compile import uncompiled_state_dict
from litforge.errors import UsageError
from litforge.resilience.checkpoint_file import read_checkpoint


def open_checkpoint(path: Path, flag: str = "--ckpt_path") -> dict[str, Any]:
    """The checkpoint at ``path``, read by litforge's one checkpoint reader (checksum, weights only)."""
    return read_checkpoint(path, flag)


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """The ``hyper_parameters`` a checkpoint records (``{}`` when it has none)."""
    hparams = open_checkpoint(path).get("hyper_parameters")
    return dict(hparams) if isinstance(hparams, dict) else {}


def check_same_model_class(
    path: Path,
    saved: str | None,
    configured: str | None,
    flag: str = "--ckpt_path",
    hint: str = "pass the config of the run that wrote it (--config <run>/config.yaml)",
    config_name: str = "the config",
) -> None:
    """Refuse a checkpoint saved from another model class (``saved``, its ``_class_path``) than the
    config's (``configured``): the config would silently pair it with another model and data.
    A short name matches a full path of that name; two full paths must import the same class (two files of
    the working folder may each define a ``TextClassifier``)."""
    if saved and configured and not same_class(saved, configured):
        raise UsageError(
            f"{flag} {path} holds another model's weights: it was saved from {saved}, {config_name} "
            f"names {configured}; {hint}"
        )


def same_class(saved: str, configured: str) -> bool:
    """Whether two class paths name one class: the same name, and for two full paths the same class object
    once imported (``litforge.models.Classifier`` is ``litforge.models.classifier.Classifier``); a path that
    no longer imports is taken by its name."""
    if saved.rsplit(".", 1)[-1] != configured.rsplit(".", 1)[-1]:
        return False
    if saved == configured or "." not in saved or "." not in configured:
        return True
    classes = []
    for path in (saved, configured):
        module_name, _, name = path.rpartition(".")
        try:
            classes.append(getattr(importlib.import_module(module_name), name))
        except Exception:  # moved or renamed since: its name is all there is to go by
            return True
    return classes[0] is classes[1]


def check_checkpoint_fits(
    path: Path,
    model: torch.nn.Module,
    typed: dict[str, Any] | None = None,
    *,
    flag: str = "--ckpt_path",
    state_dict: dict[str, Any] | None = None,
) -> None:
    """Refuse a checkpoint whose weights cannot be loaded into ``model``, before any work starts.

    Compares names and shapes (compiled submodules' ``_orig_mod.`` ignored on both sides). Parameters
    the model creates later (lazy, ``configure_model``) are left to the load itself. ``typed``: the
    ``--model.NAME`` values of the command line that replaced the checkpoint's; the error then names them.
    ``state_dict``: the checkpoint's, when the caller has read it already.

    Raises:
        UsageError: naming ``flag``, the file, the model class and the first mismatch.
    """
    state_dict = state_dict if state_dict is not None else open_checkpoint(path, flag)["state_dict"]
    saved = _shapes(uncompiled_state_dict(state_dict))
    own = _shapes(uncompiled_state_dict(model.state_dict()))
    name = type(model).__name__
    hint = "pass the config of the run that wrote it (--config <run>/config.yaml) or a matching checkpoint"
    if typed:
        flags = " ".join(f"--model.{key} {value}" for key, value in typed.items())
        hint = f"{flags} changed the model the weights were saved from: leave it out to use the checkpoint's"
    if own and saved and not own.keys() & saved.keys():
        example = next(iter(saved))
        raise UsageError(
            f"{flag} {path} holds another model's weights: none of its {len(saved)} tensors "
            f"(e.g. {example}) is in {name}; {hint}"
        )
    differ = sorted(key for key in own.keys() & saved.keys() if own[key] != saved[key])
    if differ:
        key = differ[0]
        raise UsageError(
            f"{flag} {path} does not fit {name}: {key} is {saved[key]} in the checkpoint but "
            f"{own[key]} in the model ({len(differ)} tensor(s) differ); {hint}"
        )
    if _complete_at_init(model):  # else the layers built later (setup, configure_model) are not there yet
        unexpected, missing = sorted(saved.keys() - own.keys()), sorted(own.keys() - saved.keys())
        kinds = [(len(unexpected), "that the model has no place for", unexpected)] if unexpected else []
        kinds += [(len(missing), "that the model has and the checkpoint lacks", missing)] if missing else []
        if kinds:
            parts = "; ".join(f"{count} tensor(s) {what} (e.g. {names[0]})" for count, what, names in kinds)
            raise UsageError(
                f"{flag} {path} does not fit {name}: {parts}; was the module's code changed since the run "
                "that wrote it, or is the config another run's? (strict_loading = False on the module loads "
                "the tensors that fit)"
            )


def _complete_at_init(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds every tensor it will ever have: no lazy parameter, no ``setup`` or
    ``configure_model`` of its own that may build more, no ``strict_loading = False``."""
    import lightning as L
    from lightning.pytorch.utilities.model_helpers import is_overridden

    if any(isinstance(parameter, UninitializedParameter) for parameter in model.parameters()):
        return False
    if isinstance(model, L.LightningModule):
        later = any(
            is_overridden(hook, model, parent=L.LightningModule) for hook in ("setup", "configure_model")
        )
        return not later and getattr(model, "strict_loading", True)
    return True


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {
        key: tuple(value.shape)
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and not isinstance(value, UninitializedParameter)
    }
