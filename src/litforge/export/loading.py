"""Rebuild a LightningModule from a checkpoint without unpickling objects (``litforge export --ckpt FILE``).

The class and its arguments come from the run's saved ``config.yaml`` (``<run>/checkpoints/x.ckpt`` ->
``<run>/config.yaml``) and the checkpoint's ``hyper_parameters``; the weights load with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. Class paths read from those
files must name a LightningModule (``model``) or LightningDataModule (``data``): anything else is refused
before it is instantiated.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pickle
import pickletools
import warnings
import zipfile
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


def import_class(class_path: Any, base: type, where: str) -> type:
    """``package.module.Class`` (read from ``where``) -> the class, once it is known to subclass ``base``.

    Nothing is instantiated before this check: a file naming ``subprocess.Popen`` is refused, never run.
    ``UsageError`` naming ``where`` when the path cannot be imported or names something else.
    """
    if not isinstance(class_path, str) or "." not in class_path:
        raise UsageError(f"{where}: {class_path!r} is not a class path (package.module.ClassName)")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except Exception as err:  # a missing module or attribute, or a module whose own import fails
        raise UsageError(f"{where}: cannot import '{class_path}': {type(err).__name__}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UsageError(
            f"{where}: '{class_path}' is not a {base.__name__} subclass; refused, nothing was created"
        )
    return cls


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``; ``UsageError`` if missing, not a checkpoint,
    or holding pickled objects that weights-only loading refuses (torch's advice to load it with
    ``weights_only=False`` is not repeated: that would run whatever the file holds)."""
    if not path.is_file():
        raise UsageError(f"--ckpt: no such checkpoint file: {path}")
    if zipfile.is_zipfile(path) and not _is_torch_archive(path):
        raise UsageError(f"--ckpt: {path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says enough
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not _well_formed_pickle(path):
            raise UsageError(
                f"--ckpt: {path} is not a readable checkpoint (not a valid pickle stream)"
            ) from None
        raise UsageError(
            f"--ckpt: {path} is refused as unsafe: loading it needs more than tensors and plain containers "
            f"({_unpickler_reason(err)}), and unpickling that could run code"
        ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise UsageError(f"--ckpt: {path} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"--ckpt: {path} has no 'state_dict'; is it a Lightning checkpoint?")
    return checkpoint


def _is_torch_archive(path: Path) -> bool:
    """A ``torch.save`` zip holds ``<name>/data.pkl``."""
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def _well_formed_pickle(path: Path) -> bool:
    """Whether the checkpoint's (first) pickle parses, opcode by opcode, without running any of it."""
    try:
        with contextlib.ExitStack() as stack:
            if zipfile.is_zipfile(path):
                archive = stack.enter_context(zipfile.ZipFile(path))
                data = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
                handle = stack.enter_context(archive.open(data))
            else:
                handle = stack.enter_context(path.open("rb"))
            for _ in pickletools.genops(handle):
                pass
    except Exception:  # garbage, truncation: not a pickle
        return False
    return True


def _unpickler_reason(error: Exception) -> str:
    """The weights-only unpickler's reason, without torch's advice to allow-list or retry unsafely."""
    advice = ("weights only load failed", "weights_only", "check the documentation", "can still be loaded")
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not any(words in line.lower() for words in advice)]
    return (reasons[0] if reasons else "not tensors").split(". Please use", 1)[0].rstrip(".")


def run_config_file(checkpoint_path: Path) -> Path:
    """Where the run a checkpoint belongs to keeps its resolved config: ``<run>/config.yaml``."""
    folder = checkpoint_path.resolve().parent
    return folder.parent / "config.yaml" if folder.name == "checkpoints" else folder / "config.yaml"


def run_config(config_file: Path) -> dict[str, Any]:
    """The run's resolved config, or ``{}`` when there is none."""
    if not config_file.is_file():
        return {}
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"cannot parse the run config {config_file}: {err}") from None
    return config if isinstance(config, dict) else {}


def load_checkpoint(path: Path, class_path: str | None = None) -> LoadedCheckpoint:
    """Rebuild the module saved in ``path`` (class from ``class_path``, the run config or hparams)."""
    checkpoint = read_checkpoint(path)
    config_file = run_config_file(path)
    config = run_config(config_file)
    hparams = checkpoint.get("hyper_parameters")
    hparams = dict(hparams) if isinstance(hparams, dict) else {}
    model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
    if class_path:
        where = "--model-class"
    elif model_config.get("class_path"):
        class_path, where = model_config["class_path"], f"{config_file} (model.class_path)"
    elif hparams.get("_class_path"):
        class_path, where = hparams["_class_path"], f"{path} (hyper_parameters._class_path)"
    else:
        raise UsageError(
            f"--ckpt: cannot tell which LightningModule {path} holds (no run config.yaml beside its "
            "checkpoints/ folder and no '_class_path' in its hyper_parameters); pass --model-class "
            "package.module.ClassName"
        )
    cls = import_class(class_path, L.LightningModule, where)
    data_cls = _data_class(config, config_file)  # checked before anything is instantiated
    init_args = model_config.get("init_args")
    kwargs = {**(init_args if isinstance(init_args, dict) else {}), **hparams}
    module = _configured(cls(**_accepted_kwargs(cls, kwargs)), class_path)
    try:  # weights saved through torch.compile wrappers are named net._orig_mod.<...>: load them as net.<...>
        module.load_state_dict(uncompiled_state_dict(checkpoint["state_dict"]), strict=True)
    except RuntimeError as err:
        raise UsageError(f"--ckpt: weights in {path} do not fit {class_path}: {err}") from None
    module.eval()
    loaded = LoadedCheckpoint(module=module, class_path=class_path, checkpoint=path.resolve())
    loaded.classes = declared_classes(module, _attach_data(loaded, config, data_cls))
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


def _data_class(config: dict[str, Any], config_file: Path) -> type | None:
    """The run config's ``data.class_path``, checked to be a LightningDataModule, or None."""
    data_config = config.get("data") if isinstance(config.get("data"), dict) else {}
    if not data_config.get("class_path"):
        return None
    return import_class(data_config["class_path"], L.LightningDataModule, f"{config_file} (data.class_path)")


def _attach_data(loaded: LoadedCheckpoint, config: dict[str, Any], data_cls: type | None) -> Any:
    """One real batch from the run's datamodule, when it can be built offline; the datamodule or None."""
    if data_cls is None:
        return None
    data_config = config["data"]
    loaded.data_class_path = data_config["class_path"]
    init_args = data_config.get("init_args")
    datamodule = None
    try:
        datamodule = data_cls(**(init_args if isinstance(init_args, dict) else {}))
        datamodule.setup("predict")
        batch = next(iter(datamodule.predict_dataloader()))
        tensor = batch[0] if isinstance(batch, (list, tuple)) else batch
        loaded.real_batch = tensor if isinstance(tensor, torch.Tensor) else None
    except Exception as err:  # the data may be unavailable where the export runs; exporting still works
        note = f"datamodule {data_config['class_path']} unavailable ({type(err).__name__}: {err})"
        warnings.warn(f"{note}; verifying on random inputs only", stacklevel=2)
        loaded.notes.append(note)
    return datamodule
