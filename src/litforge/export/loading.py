"""Rebuild a LightningModule from a checkpoint without unpickling objects (``litforge export --ckpt FILE``).

The class and its arguments come from the run's saved ``config.yaml`` (``<run>/checkpoints/x.ckpt`` ->
``<run>/config.yaml``) and the checkpoint's ``hyper_parameters``; the weights load with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. Class paths read from those
files must name a LightningModule (``model``) or LightningDataModule (``data``): anything else is refused
before it is instantiated.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge._compat.torch_compile import uncompiled, uncompiled_state_dict
from litforge.data.module_setup import builds_in_setup, set_up_with_data
from litforge.engine.checkpoint_fit import check_checkpoint_fits, check_same_model_class
from litforge.engine.failures import path_argument_hint
from litforge.engine.run_dir import RunDir
from litforge.errors import JobFailed, UsageError, first_line
from litforge.export.feature_names import declared_feature_names
from litforge.predictions.batch_tensors import dataclass_fields
from litforge.predictions.forward_inputs import (
    forward_input_values,
    forward_on_batch,
    labels_of,
    positional_inputs,
    predict_step_relation,
    single_tensor,
)
from litforge.predictions.output_head import PROBABILITIES, Classes, declared_classes, predict_step_head
from litforge.resilience.checkpoint_file import note_if_unverified, read_checkpoint
from litforge.working_folder import missing_module_hint


@dataclass
class LoadedCheckpoint:
    """A module rebuilt from a checkpoint, plus what its run knows about the data."""

    module: torch.nn.Module
    class_path: str
    checkpoint: Path
    classes: Classes = field(default_factory=Classes)  # declared by the module and the run's datamodule
    real_batch: torch.Tensor | None = None  # one batch of raw inputs from the run's datamodule
    real_inputs: tuple[torch.Tensor, ...] | None = None  # every input of forward from that batch
    batch_labels: torch.Tensor | None = None  # that batch's integer class labels, if it has some
    predict_step_sigmoid: bool = False  # predict_step returns sigmoid(forward) on that batch (multi-label)
    feature_names: list[str] | None = None  # the datamodule's names of the input's columns
    text_max_length: int | None = None  # the datamodule's max_length: tokens a text is truncated to
    data_class_path: str | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str, said: str = "") -> None:
        """Say ``text`` (and ``said``, on screen only) as a ``litforge: note:`` line and keep it for export.json."""
        print(f"litforge: note: {text}{said}", file=sys.stderr, flush=True)
        self.notes.append(text)


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
        missing = isinstance(err, ModuleNotFoundError) and err.name and module_name.startswith(err.name)
        hint = missing_module_hint(module_name) if missing else ""
        raise UsageError(
            f"{where}: cannot import '{class_path}': {type(err).__name__}: {err}{hint}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UsageError(
            f"{where}: '{class_path}' is not a {base.__name__} subclass; refused, nothing was created"
        )
    return cls


def run_config_file(checkpoint_path: Path) -> Path:
    """Where the run a checkpoint belongs to keeps its resolved config (``<run>/config.yaml``); for a
    checkpoint outside a run folder, a ``config.yaml`` next to it."""
    run = RunDir.of_checkpoint(checkpoint_path)
    return run.config if run is not None else checkpoint_path.resolve().parent / "config.yaml"


def run_config(config_file: Path) -> dict[str, Any]:
    """The run's resolved config, or ``{}`` when there is none."""
    if not config_file.is_file():
        return {}
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"cannot parse the run config {config_file}: {err}") from None
    return config if isinstance(config, dict) else {}


def load_checkpoint(
    path: Path,
    class_path: str | None = None,
    config_file: Path | None = None,
    model_args: dict[str, Any] | None = None,
) -> LoadedCheckpoint:
    """Rebuild the module saved in ``path`` (class from ``class_path``, the run config or hparams); the run
    config is ``config_file`` when given (``export --config``), else the checkpoint's run's config.yaml.
    ``model_args`` (``export --model.NAME VALUE``) win over the checkpoint's hyperparameters."""
    checkpoint = read_checkpoint(path, "--ckpt")
    if config_file is not None and not config_file.is_file():
        raise UsageError(f"--config: no such file: {config_file}")
    config_file = config_file or run_config_file(path)
    config = run_config(config_file)
    hparams = checkpoint.get("hyper_parameters")
    hparams = dict(hparams) if isinstance(hparams, dict) else {}
    model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
    if class_path:
        where = "--model-class"
        run_class = model_config.get("class_path")
        if run_class and _class_name(run_class) != _class_name(class_path):
            # another class than the run's: the run's init args are not its own; a subclass (one adding an
            # export spec, say) still learnt from the run's datamodule, another model did not
            if _subclass_of(class_path, run_class):
                print(
                    f"litforge: note: --model-class {class_path} is a subclass of the run's {run_class}: built "
                    "from the checkpoint's hyperparameters, not the run's model arguments; the run's "
                    "datamodule still gives the real batch and the class names",
                    file=sys.stderr,
                )
            else:
                config = {}
            model_config = {}
    elif model_config.get("class_path"):
        class_path, where = model_config["class_path"], f"{config_file} (model.class_path)"
        check_same_model_class(
            path,
            hparams.get("_class_path"),
            class_path,
            flag="--ckpt",
            hint="export it from the run folder that wrote it, or from a copy outside any run folder",
            config_name=f"this run's {config_file}",
        )
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
    for name, value in (model_args or {}).items():
        _apply_model_argument(cls, kwargs, name, value)
    kwargs = _with_injected_objects(cls, _accepted_kwargs(cls, kwargs), where)
    module = _configured(_built(cls, kwargs, class_path, path), class_path)
    datamodule = _set_up_as_the_trainer_does(module, config, data_cls, class_path)
    check_checkpoint_fits(path, module, flag="--ckpt", state_dict=checkpoint["state_dict"])
    try:  # weights saved through torch.compile wrappers are named net._orig_mod.<...>: load them as net.<...>
        keys = module.load_state_dict(uncompiled_state_dict(checkpoint["state_dict"]), strict=False)
    except RuntimeError as err:  # a lazy parameter of another shape: torch's second line says which
        detail = (str(err).strip().splitlines() or [""])[1:2] or [first_line(err)]
        raise UsageError(f"--ckpt: weights in {path} do not fit {class_path}: {detail[0].strip()}") from None
    unplaced = sorted(uncompiled_state_dict(checkpoint["state_dict"]).keys() - module.state_dict().keys())
    if unplaced and not keys.unexpected_keys:  # under a submodule that is None (built in setup()?)
        raise UsageError(
            f"--ckpt: weights in {path} do not fit {class_path}: {len(unplaced)} tensor(s) (e.g. {unplaced[0]}) "
            "have no place in the module as __init__ and configure_model() build it; build that layer there "
            "(its size as an init argument, or an nn.LazyLinear), or in setup() from self.trainer.datamodule "
            "with the run's datamodule importable"
        )
    if keys.missing_keys or keys.unexpected_keys:
        raise UsageError(
            f"--ckpt: weights in {path} do not fit {class_path}: "
            + "; ".join(
                f"{len(names)} {kind} (e.g. {names[0]})"
                for kind, names in (("missing", keys.missing_keys), ("unexpected", keys.unexpected_keys))
                if names
            )
            + "; export it with the config of the run that wrote it (--config <run>/config.yaml)"
        )
    module.eval()
    loaded = LoadedCheckpoint(module=module, class_path=class_path, checkpoint=path.resolve())
    note_if_unverified(path)
    datamodule = _attach_data(loaded, config, data_cls, datamodule)
    loaded.classes = declared_classes(module, datamodule, loaded.batch_labels)
    return loaded


def _subclass_of(class_path: str, base_path: str) -> bool:
    """Whether the class ``class_path`` names derives from the one ``base_path`` names (False when either
    does not import)."""
    try:
        cls, base = (
            import_class(path, L.LightningModule, "--model-class") for path in (class_path, base_path)
        )
    except Exception:
        return False
    return issubclass(cls, base)


def _built(cls: type, kwargs: dict[str, Any], class_path: str, path: Path) -> torch.nn.Module:
    """``cls(**kwargs)``; ``UsageError`` naming what is missing when the checkpoint's hyperparameters and run
    config do not hold every required argument (an injected ``net`` left out by ``save_hyperparameters``)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    missing = [
        p.name
        for p in parameters
        if p.name != "self"
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in kwargs
    ]
    if missing:
        raise UsageError(
            f"--ckpt: nothing says how to build {class_path}'s {', '.join(missing)}: {path} does not hold it "
            "(left out of save_hyperparameters) and no run config.yaml names it; pass the run's config "
            "(--config path/to/config.yaml)"
        )
    try:
        return cls(**kwargs)
    except Exception as err:  # the user's constructor refused the saved values
        hint = path_argument_hint(err, kwargs)
        raise UsageError(
            f"--ckpt: building {class_path} from {path} failed: {type(err).__name__}: {err}{hint}"
        ) from None


def _apply_model_argument(cls: type, kwargs: dict[str, Any], name: str, value: Any) -> None:
    """``export --model.NAME VALUE`` over the checkpoint's ``kwargs``, with a note when it replaces a value:
    NAME one of ``cls``'s arguments (any, for a ``**kwargs`` constructor), or ``ARG.KEY`` of a dict argument."""
    parameters = inspect.signature(cls.__init__).parameters
    head, dot, key = name.partition(".")
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if head not in parameters and not takes_any:
        close = difflib.get_close_matches(head, list(parameters), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"--model.{name}: {cls.__name__} has no argument {head!r}{hint}")
    if dot and not isinstance(kwargs.get(head), dict):
        raise UsageError(
            f"--model.{name}: {cls.__name__}'s {head} is not a dict; give it whole: --model.{head} VALUE"
        )
    target, field = (dict(kwargs[head]), key) if dot else (kwargs, head)
    before = target.get(field, value)
    try:
        changed = bool(before != value)
    except (RuntimeError, ValueError):  # a tensor or an array: compared element-wise
        changed = True
    if changed:
        print(
            f"litforge: note: --model.{name} {value} replaces the checkpoint's {name}={before}",
            file=sys.stderr,
        )
    target[field] = value
    if dot:
        kwargs[head] = target


def _class_name(class_path: Any) -> str | None:
    return class_path.rsplit(".", 1)[-1] if isinstance(class_path, str) else None


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


def _with_injected_objects(cls: type, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """``kwargs`` with each ``{class_path, init_args}`` value (``--model.net mymods.MLP``) built as the CLI built
    it: by jsonargparse, which imports the class only once it subclasses the parameter's annotation (a
    ``net: nn.Module`` naming ``subprocess.Popen`` is refused). A value whose parameter is untyped or ``Any``
    stays the dict it was: nothing is built from a path its signature does not vouch for."""
    injected = {name for name, value in kwargs.items() if isinstance(value, dict) and "class_path" in value}
    if not injected:
        return kwargs
    from jsonargparse import ArgumentParser, Namespace

    parameters = set(inspect.signature(cls.__init__).parameters) - {"self"}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "model", skip=parameters - injected, fail_untyped=False, sub_configs=True)
    try:
        parsed = parser.parse_object({"model": {name: kwargs[name] for name in injected}})
        built = parser.instantiate(parsed, instantiate_groups=False).model
    except Exception as err:  # a class path that does not fit its annotation, or a constructor that fails
        message = " ".join(str(err).split())
        raise UsageError(f"{where}: cannot build the module's injected arguments: {message}") from None
    objects = {name: built[name] for name in injected if not isinstance(built[name], (Namespace, dict))}
    return {**kwargs, **objects}


def _data_class(config: dict[str, Any], config_file: Path) -> type | None:
    """The run config's ``data.class_path``, checked to be a LightningDataModule, or None."""
    data_config = config.get("data") if isinstance(config.get("data"), dict) else {}
    if not data_config.get("class_path"):
        return None
    return import_class(data_config["class_path"], L.LightningDataModule, f"{config_file} (data.class_path)")


def _predict_step_relation(module: L.LightningModule, batch: Any) -> tuple[str, Any]:
    """What the module's own ``predict_step`` returns on ``batch`` beside forward's output
    (``predict_step_relation``: ``"forward"``, ``"sigmoid"``, a multi-label model, whose export then applies
    the same sigmoid, or ``"other"``), and that prediction; ``("forward", None)`` without a ``predict_step``
    of its own or when it cannot run here (it needs a trainer, another batch)."""
    if not is_overridden("predict_step", module, parent=L.LightningModule):
        return "forward", None
    try:
        with torch.no_grad():
            prediction = module.predict_step(batch, 0)
    except Exception:  # the output head decides alone
        return "forward", None
    return predict_step_relation(module, batch, prediction), prediction


def _post_processed(module: L.LightningModule, batch: Any, prediction: Any) -> bool:
    """A ``predict_step`` tensor that is neither forward's output nor what a classification or segmentation
    export answers too (class probabilities, the classes argmaxed from forward's output)."""
    return not _class_probabilities(prediction) and not _argmax_of_forward(module, batch, prediction)


def _class_probabilities(prediction: Any) -> bool:
    """Rows of class probabilities (as a classifier's export answers them too, beside its labels)."""
    if not isinstance(prediction, torch.Tensor) or not prediction.is_floating_point():
        return False
    rows = prediction.detach().float().cpu().numpy()
    return predict_step_head("classification", rows) == PROBABILITIES


def _argmax_of_forward(module: L.LightningModule, batch: Any, prediction: Any) -> bool:
    """Whether ``prediction`` is forward's output argmaxed over its class axis (1) on ``batch``."""
    if not isinstance(prediction, torch.Tensor) or prediction.is_floating_point():
        return False
    output = forward_on_batch(module, batch)
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        return False
    classes = output.argmax(dim=1)
    return classes.shape == prediction.shape and bool((classes == prediction).all())


def _unread_batch(module: L.LightningModule, batch: Any, data_name: str) -> str:
    """Why forward's inputs are not found in a batch of the datamodule, and the two ways to say them."""
    parameters = [
        p for p in inspect.signature(module.forward).parameters if p not in ("self", "args", "kwargs")
    ]
    if isinstance(batch, Mapping):
        held = f"dicts of {', '.join(map(str, batch))}"
    elif (fields := dataclass_fields(batch)) is not None:
        held = f"{type(batch).__name__} objects of {', '.join(fields)}"
    else:
        held = f"{type(batch).__name__} objects"
    return (
        f"{data_name}'s batches are {held}, and {type(module).__name__}.forward takes {', '.join(parameters)}: "
        "parity runs on random inputs only (name forward's parameters after the batch's keys, or set "
        "example_input_array, a dict of forward's keyword arguments, for a real batch)"
    )


def _another_structure(module: L.LightningModule, batch: Any, prediction: Any) -> bool:
    """A ``predict_step`` dict or tuple (a recommender's ``{"user_id", "top10"}``) that is not what forward
    returns on the batch (forward's own dict of heads is): the export answers forward's output instead."""
    if not isinstance(prediction, (Mapping, tuple, list)):
        return False
    reference = forward_on_batch(module, batch)
    if isinstance(prediction, Mapping):
        return not isinstance(reference, Mapping) or set(reference) != set(prediction)
    return not isinstance(reference, (tuple, list)) or len(reference) != len(prediction)


def _post_processing_note(module: L.LightningModule, prediction: Any) -> str:
    """The export answers forward's output, not what this ``predict_step`` post-processes it into."""
    if isinstance(prediction, torch.Tensor):
        described = f"{tuple(prediction.shape[1:])} {str(prediction.dtype).removeprefix('torch.')} per sample"
    elif isinstance(prediction, Mapping):
        described = f"a dict of {', '.join(map(str, prediction))}"
    else:
        described = (
            f"a {type(prediction).__name__} of {len(prediction)}"
            if isinstance(prediction, (tuple, list))
            else type(prediction).__name__
        )
    return (
        f"{type(module).__name__}.predict_step returns {described}, not forward's output: an export holds "
        "forward only, so serve and predict --artifact answer forward's output through its head, unlike "
        "predict from the checkpoint (put the post-processing, an argmax say, into forward if the artifact "
        "must answer the same)"
    )


_SCALING_NAME = re.compile(r"(^|_)(mean|means|std|stds|mu|sigma|scale|scaler)(_|$)", re.I)


def data_side_scaling(datamodule: Any) -> list[str]:
    """The datamodule's attributes that look like normalisation statistics (``self.mean``, ``self.x_std``,
    a fitted ``self.scaler``): numbers, tensors or arrays, or an object with a ``transform`` method."""
    found = []
    for name, value in vars(datamodule).items():
        if not _SCALING_NAME.search(name) or name.startswith("__"):
            continue
        numeric = isinstance(value, (float, torch.Tensor)) or type(value).__module__.startswith("numpy")
        if numeric or callable(getattr(value, "transform", None)):
            found.append(f"self.{name}")
    return found


# Where an export's real batch comes from: the first loader the datamodule defines, and the stage Lightning
# sets it up for (most datamodules define no predict_dataloader)
_EXAMPLE_LOADERS = (
    ("predict_dataloader", "predict"),
    ("val_dataloader", "validate"),
    ("test_dataloader", "test"),
    ("train_dataloader", "fit"),
)


def _example_loader(datamodule: Any) -> tuple[str, str]:
    """(loader method, setup stage) of the first loader in ``_EXAMPLE_LOADERS`` that ``datamodule`` defines."""
    for method, stage in _EXAMPLE_LOADERS:
        with contextlib.suppress(ValueError):  # not a LightningDataModule: its predict_dataloader
            if is_overridden(method, datamodule):
                return method, stage
    return _EXAMPLE_LOADERS[0]


def _prepared_datamodule(config: dict[str, Any], data_cls: type) -> Any:
    """The run's datamodule, built from its config and prepared as Lightning prepares it for the loader an
    export takes its example batch from (``_example_loader``)."""
    init_args = config["data"].get("init_args")
    datamodule = data_cls(**(init_args if isinstance(init_args, dict) else {}))
    datamodule.prepare_data()  # Lightning's order: a datamodule may write its files here
    datamodule.setup(_example_loader(datamodule)[1])
    return datamodule


def _set_up_as_the_trainer_does(
    module: torch.nn.Module, config: dict[str, Any], data_cls: type | None, class_path: str
) -> Any:
    """For a module with its own ``setup()`` (a layer built from ``self.trainer.datamodule``): the run's
    datamodule, prepared, and ``module.setup("predict")`` run with it, before the weights load; else None."""
    if not builds_in_setup(module) or data_cls is None:
        return None
    try:
        datamodule = _prepared_datamodule(config, data_cls)
    except Exception as err:  # without it setup() cannot run: the weights check says what is missing
        print(
            f"litforge: note: {class_path}.setup() not run: datamodule {config['data']['class_path']} "
            f"unavailable ({type(err).__name__}: {first_line(err)})",
            file=sys.stderr,
            flush=True,
        )
        return None
    try:
        set_up_with_data(module, datamodule, "predict")
    except Exception as err:
        raise JobFailed(f"{class_path}.setup('predict') failed: {type(err).__name__}: {err}") from None
    return datamodule


def _attach_data(
    loaded: LoadedCheckpoint, config: dict[str, Any], data_cls: type | None, datamodule: Any = None
) -> Any:
    """One real batch from the run's datamodule (``datamodule`` when it is prepared already), when it can be
    built offline; the datamodule or None."""
    if data_cls is None:
        return None
    data_config = config["data"]
    loaded.data_class_path = data_config["class_path"]
    try:
        datamodule = datamodule or _prepared_datamodule(config, data_cls)
        batch = next(iter(getattr(datamodule, _example_loader(datamodule)[0])()))
        tensors = forward_input_values(loaded.module, batch)
        if not tensors:  # parity then runs on random inputs, and a module without an example has none
            loaded.note(_unread_batch(loaded.module, batch, data_cls.__name__))
        loaded.real_batch = single_tensor(tensors)
        if tensors and all(isinstance(t, torch.Tensor) for t in tensors):
            loaded.real_inputs = tuple(tensors)
        relation, prediction = _predict_step_relation(loaded.module, batch)
        loaded.predict_step_sigmoid = relation == "sigmoid"
        post_processed = relation == "other" and _post_processed(loaded.module, batch, prediction)
        if post_processed or _another_structure(loaded.module, batch, prediction):
            loaded.note(_post_processing_note(loaded.module, prediction))
        loaded.batch_labels = labels_of(batch, positional_inputs(loaded.module))
        loaded.feature_names = declared_feature_names(datamodule)
        loaded.text_max_length = _text_max_length(datamodule)
        if getattr(datamodule, "tokenizer", None) is not None and not callable(
            getattr(loaded.module, "litforge_export_spec", None)
        ):
            note = (
                f"{data_cls.__name__} tokenizes texts, and the export takes token ids: its tokenizer is not in "
                "it (to serve raw texts, define litforge_export_spec() with request_format 'texts' and "
                "save_assets: docs/export.md, 'Your own module')"
            )
            loaded.note(note)
        if (scaling := data_side_scaling(datamodule)) and getattr(loaded.module, "standardize", None) is None:
            note = (
                f"{data_cls.__name__} holds {', '.join(scaling)}: if it scales rows before forward, the export "
                "takes scaled rows, not raw ones (move the scaling into the module to serve raw rows: "
                "docs/export.md, 'Raw inputs in')"
            )
            loaded.note(note)
    except Exception as err:  # the data may be unavailable where the export runs; exporting still works
        note = f"datamodule {data_config['class_path']} unavailable ({type(err).__name__}: {first_line(err)})"
        loaded.note(note, "; verifying on random inputs only")
    return datamodule


_MAX_LENGTH_NAMES = (
    "max_length",
    "max_seq_length",
    "max_len",
)  # litforge's, Hugging Face scripts', a short one


def _text_max_length(datamodule: Any) -> int | None:
    """A text datamodule's ``max_length`` (or ``max_seq_length``, ``max_len``; attribute or hyperparameter):
    what training truncated texts to."""
    hparams = getattr(datamodule, "hparams", None) or {}
    for name in _MAX_LENGTH_NAMES:
        for value in (
            getattr(datamodule, name, None),
            hparams.get(name) if hasattr(hparams, "get") else None,
        ):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None
