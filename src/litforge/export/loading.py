"""Rebuild a LightningModule from a checkpoint without unpickling objects (``litforge export --ckpt FILE``).

The class and its arguments come from the run's saved ``config.yaml`` (``<run>/checkpoints/x.ckpt`` ->
``<run>/config.yaml``) and the checkpoint's ``hyper_parameters``; the weights load with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge._compat.torch_compile import uncompiled, uncompiled_state_dict
from litforge.errors import JobFailed, UsageError
from litforge.output_head import Classes, declared_classes


@dataclass
class LoadedCheckpoint:
    """A module rebuilt from a checkpoint, plus what its run knows about the data."""

    module: torch.nn.Module
    class_path: str
    checkpoint: Path
    classes: Classes = field(default_factory=Classes)  # declared by the module and the run's datamodule
    real_batch: torch.Tensor | None = None  # one batch of raw inputs from the run's datamodule
    data_class_path: str | None = None
    notes: list[str] = field(default_factory=list)


def import_class(class_path: str) -> type:
    """``package.module.Class`` -> the class; ``UsageError`` when it cannot be imported."""
    module_name, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise UsageError(f"cannot import model class '{class_path}': {err}") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``; ``UsageError`` if missing or corrupt."""
    if not path.is_file():
        raise UsageError(f"--ckpt: no such checkpoint file: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated, foreign or unsafe files
        # keep the cause, not torch's advice to retry with weights_only=False (unsafe for untrusted files)
        text = str(err).split("WeightsUnpickler error:", 1)[-1]
        reason = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
        raise UsageError(f"--ckpt: {path} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"--ckpt: {path} has no 'state_dict'; is it a Lightning checkpoint?")
    return checkpoint


def run_config(checkpoint_path: Path) -> dict[str, Any]:
    """The resolved ``config.yaml`` of the run a checkpoint belongs to, or ``{}``."""
    folder = checkpoint_path.resolve().parent
    candidate = folder.parent / "config.yaml" if folder.name == "checkpoints" else folder / "config.yaml"
    if not candidate.is_file():
        return {}
    try:
        config = yaml.safe_load(candidate.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"cannot parse the run config {candidate}: {err}") from None
    return config if isinstance(config, dict) else {}


def load_checkpoint(path: Path, class_path: str | None = None) -> LoadedCheckpoint:
    """Rebuild the module saved in ``path`` (class from ``class_path``, the run config or hparams)."""
    checkpoint = read_checkpoint(path)
    config = run_config(path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
    class_path = class_path or model_config.get("class_path") or hparams.get("_class_path")
    if not class_path:
        raise UsageError(
            f"--ckpt: cannot tell which LightningModule {path} holds (no run config.yaml beside its "
            "checkpoints/ folder and no '_class_path' in its hyper_parameters); pass --model-class "
            "package.module.ClassName"
        )
    cls = import_class(class_path)
    kwargs = {**(model_config.get("init_args") or {}), **hparams}
    module = _configured(cls(**_accepted_kwargs(cls, kwargs)), class_path)
    try:  # weights saved through torch.compile wrappers are named net._orig_mod.<...>: load them as net.<...>
        module.load_state_dict(uncompiled_state_dict(checkpoint["state_dict"]), strict=True)
    except RuntimeError as err:
        raise UsageError(f"--ckpt: weights in {path} do not fit {class_path}: {err}") from None
    module.eval()
    loaded = LoadedCheckpoint(module=module, class_path=class_path, checkpoint=path.resolve())
    loaded.classes = declared_classes(module, _attach_data(loaded, config))
    return loaded


def _configured(module: torch.nn.Module, class_path: str) -> torch.nn.Module:
    """``configure_model()`` run as ``load_from_checkpoint`` runs it (layers built there exist), then every
    ``torch.compile`` the module applied to itself undone: exports trace the eager code."""
    if isinstance(module, L.LightningModule) and is_overridden("configure_model", module):
        try:
            module.configure_model()
        except Exception as err:
            raise JobFailed(f"{class_path}.configure_model() failed: {type(err).__name__}: {err}") from None
    return uncompiled(module)


def _accepted_kwargs(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {k: v for k, v in kwargs.items() if not k.startswith("_")}
    return {k: v for k, v in kwargs.items() if k in parameters and k != "self"}


def _attach_data(loaded: LoadedCheckpoint, config: dict[str, Any]) -> Any:
    """One real batch from the run's datamodule, when it can be built offline; the datamodule or None."""
    data_config = config.get("data") if isinstance(config.get("data"), dict) else None
    if not data_config or not data_config.get("class_path"):
        return None
    loaded.data_class_path = data_config["class_path"]
    datamodule = None
    try:
        datamodule = import_class(data_config["class_path"])(**(data_config.get("init_args") or {}))
        datamodule.setup("predict")
        batch = next(iter(datamodule.predict_dataloader()))
        tensor = batch[0] if isinstance(batch, (list, tuple)) else batch
        loaded.real_batch = tensor if isinstance(tensor, torch.Tensor) else None
    except Exception as err:  # the data may be unavailable where the export runs; exporting still works
        note = f"datamodule {data_config['class_path']} unavailable ({type(err).__name__}: {err})"
        warnings.warn(f"{note}; verifying on random inputs only", stacklevel=2)
        loaded.notes.append(note)
    return datamodule
