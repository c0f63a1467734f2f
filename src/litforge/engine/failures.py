"""An exception from the user's code while a job ran: exit 1, its message and the user's own frames.

litforge fit --model mymod.LitModel ...
litforge: error: fit failed: RuntimeError: boom
  File "/home/me/proj/mymod.py", line 20, in training_step
    raise RuntimeError("boom")
(--debug shows the full traceback)
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litforge
from litforge import working_folder
from litforge.callbacks.monitor_mode import closest_logged
from litforge.errors import HINT, JobFailed, UsageError

_MAX_MESSAGE = 600


class UserCodeFailed(JobFailed):
    """The job ran and an exception ended it (exit 1); ``detail`` holds the frames of the user's code."""

    @classmethod
    def from_exception(cls, subcommand: str, error: BaseException) -> UserCodeFailed:
        return cls(f"{subcommand} failed: {describe(error)}", frames_detail(error))


class BuildFailed(UsageError):
    """The model, datamodule, a callback or a logger raised while being built from the config (exit 2: the
    values given to it are the usual cause); ``detail`` holds the frames of the user's code.

    ``place`` says where the config names a class (``my.yaml: trainer.callbacks[0]``), when it can."""

    @classmethod
    def from_exception(
        cls,
        error: BaseException,
        place: Callable[[type], str | None] = lambda built: None,
        model_args: dict[str, Any] | None = None,
    ) -> BuildFailed:
        """``model_args``: the model's init arguments, to name the one that points at a missing file."""
        error = _unwrapped(error)
        built = _class_being_built(error)
        what = f"{built.__module__}.{built.__qualname__}" if built else "the config's classes"
        where = place(built) if built else None
        # litforge's and Lightning's classes check their arguments with messages that say it all: no frames
        library_class = built is not None and built.__module__.split(".")[0] in ("litforge", "lightning")
        return cls(
            f"{where + ': ' if where else ''}building {what} failed: {describe(error)}"
            f"{path_argument_hint(error, model_args or {})}",
            "" if library_class else frames_detail(error),
        )


def path_argument_hint(error: BaseException, model_args: dict[str, Any]) -> str:
    """`` (--model.backbone_path names it: --model.backbone_path PATH gives the file's path)`` when ``error``
    is a missing file that one of the model's init arguments names: a mistyped path, or a file moved since
    training whose path the run's checkpoint and config keep."""
    missing = getattr(error, "filename", None) if isinstance(error, FileNotFoundError) else None
    names = [name for name, value in model_args.items() if missing and str(value) == str(missing)]
    return f" (--model.{names[0]} names it: --model.{names[0]} PATH gives the file's path)" if names else ""


def describe(error: BaseException) -> str:
    """``Type: message`` on one line, shortened."""
    text = " ".join(str(error).split())
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + " ..."
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    hints = [note for note in getattr(error, "__notes__", []) if note.startswith(HINT)]
    return " ".join([described, *hints, *_relative_path_hint(error)])


def _relative_path_hint(error: BaseException) -> list[str]:
    """A missing file named by a relative path (a run's ``data_dir: data``) is looked for from the folder
    litforge runs in, not from the run's or the config's: say which folder that was."""
    name = getattr(error, "filename", None)
    if not isinstance(error, FileNotFoundError) or not isinstance(name, str) or Path(name).is_absolute():
        return []
    return [f"{HINT}a relative path is read from the folder litforge runs in, {working_folder.started_in()}; "
            "a run's config keeps paths as they were typed, so run it from where they hold, or give absolute paths)"]  # fmt: skip


# Lightning's words for a callback whose monitor the model never logged: (callback, monitor, logged names)
_UNLOGGED_MONITOR = (
    re.compile(r"Early stopping conditioned on metric `(?P<monitor>[^`]+)` which is not available\..*?"
               r"following: (?P<logged>.*)$", re.S),
    re.compile(r"(?P<callback>ModelCheckpoint)\(monitor='(?P<monitor>[^']+)'\)`? could not find the monitored key "
               r"in the returned metrics: \[(?P<logged>[^\]]*)\]"),
)  # fmt: skip


_UNLOGGED_SCHEDULER_MONITOR = re.compile(
    r"ReduceLROnPlateau conditioned on metric (?P<monitor>\S+) which is not available\. "
    r"Available metrics are: \[(?P<logged>[^\]]*)\]"
)


def _logged_names(listed: str) -> list[str]:
    """The metric names of Lightning's comma-separated, quoted list, less its own ``epoch`` and ``step``."""
    names = (name.strip(" `'\"") for name in listed.split(","))
    return [name for name in names if name and name not in ("epoch", "step")]


def unlogged_scheduler_monitor(error: BaseException) -> str | None:
    """Lightning's refusal of a ``ReduceLROnPlateau`` whose ``monitor`` (from ``configure_optimizers()``)
    the model does not log, as one line naming where it is set and the closest logged name."""
    if (found := _UNLOGGED_SCHEDULER_MONITOR.search(str(error))) is None:
        return None
    logged = _logged_names(found["logged"])
    close = closest_logged(found["monitor"], logged)
    return (
        f"the ReduceLROnPlateau of configure_optimizers() monitors '{found['monitor']}', which the model does "
        f"not log (it logs: {', '.join(logged) or 'nothing'}{f'; did you mean {close}?' if close else ''}): "
        "set its 'monitor' in the lr_scheduler dict to a logged metric"
    )


def unlogged_monitor(error: BaseException) -> str | None:
    """Lightning's ``EarlyStopping``/``ModelCheckpoint`` refusing a ``monitor`` the model does not log (a
    typo in a config's callback, found at the first validation) as one line with the closest logged name."""
    for pattern in _UNLOGGED_MONITOR:
        if (found := pattern.search(str(error))) is None:
            continue
        callback = found.groupdict().get("callback") or "EarlyStopping"
        logged = _logged_names(found["logged"])
        close = closest_logged(found["monitor"], logged)
        hint = f"; did you mean {close}?" if close else ""
        validation = ("val", "valid", "validation")
        stages = {re.split(r"[_/.]", name)[0] for name in logged}
        if (
            not close
            and re.split(r"[_/.]", found["monitor"])[0] in validation
            and not stages & set(validation)
        ):
            hint = (
                "; no validation metric at all: is validation off (--trainer.limit_val_batches 0, or no "
                "validation_step or val_dataloader)?"
            )
        return (
            f"{callback}(monitor={found['monitor']!r}) in trainer.callbacks: the model logs no "
            f"'{found['monitor']}' (it logs: {', '.join(logged) or 'nothing'}{hint})"
        )
    return None


_MISSING_LOADER = re.compile(r"`(?P<loader>\w+_dataloader)` must be implemented")
_LOADER_HINT = {
    "predict_dataloader": "define predict_dataloader() (the rows predict writes), or export the run and predict "
    "on a file: litforge export --run RUN, then litforge predict --artifact <run>/export --input rows.csv",
    "test_dataloader": "define test_dataloader() (the data test scores)",
    "val_dataloader": "define val_dataloader() (the data validate scores)",
}


def missing_loader(error: BaseException, command: str) -> str | None:
    """Lightning's "`predict_dataloader` must be implemented" (a datamodule without the loader a command
    runs) as one line that says what to add, or how to predict without it."""
    if (found := _MISSING_LOADER.search(str(error))) is None:
        return None
    loader = found["loader"]
    hint = _LOADER_HINT.get(loader, f"define {loader}()")
    return f"{command}: the datamodule (or model) defines no {loader}(), which {command} runs: {hint}"


def optimizer_groups_changed(error: BaseException, command: str) -> str | None:
    """torch's refusal to load a checkpoint's optimizer state whose parameter groups differ from those
    ``configure_optimizers()`` builds now: a resume with a model argument that changes which parameters
    train (a number of frozen layers, a head's width)."""
    if not isinstance(error, ValueError) or "parameter group that doesn't match the size" not in str(error):
        return None
    return (
        f"{command}: the run's checkpoint holds optimizer state for other parameter groups than "
        "configure_optimizers() builds now: a model argument changed which parameters train (a number of "
        "frozen layers, a layer's size?); a resume trains the parameters the run trained, so drop that "
        "override, or train with it as a new --run (or --overwrite)"
    )


def is_trainer_misconfiguration(error: BaseException) -> bool:
    """Lightning's ``MisconfigurationException`` raised from Lightning's own checks, with no frame of the
    user's code on the way (the user's code raising one is a failure of that code); or raised by Lightning
    about a trainer setting while the user's code read the trainer (``limit_train_batches`` below one batch,
    found when ``configure_optimizers`` reads ``trainer.estimated_stepping_batches``); or a ``ValueError`` of
    Lightning's own loops about such a setting (``val_check_interval`` past an epoch's batches)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    roots = _library_roots()
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, ValueError) and not isinstance(error, MisconfigurationException):
        # the fit loop's own ValueError: a val_check_interval of more batches than an epoch has
        return (
            all(_in_library(frame, roots) for frame in frames)
            and _TRAINER_SETTING.search(str(error)) is not None
        )
    if not isinstance(error, MisconfigurationException):
        return False
    if all(_in_library(frame, roots) for frame in frames):
        return True
    return bool(frames) and _in_library(frames[-1], roots) and _TRAINER_SETTING.search(str(error)) is not None


# The trainer settings whose values Lightning refuses once it sees the data.
_TRAINER_SETTING = re.compile(
    r"\b(limit_(train|val|test|predict)_batches|val_check_interval|check_val_every_n_epoch)\b"
)


def hparams_conflict(error: BaseException, module: Any, datamodule: Any) -> str | None:
    """Lightning's ``Error while merging hparams: the keys ['num_classes'] ...`` (the model and the data both
    record a hyperparameter, with different values) as one line naming both values."""
    if not isinstance(error, RuntimeError) or not str(error).startswith("Error while merging hparams"):
        return None
    keys = re.findall(r"'(\w+)'", str(error).partition("[")[2].partition("]")[0])
    model_hp, data_hp = getattr(module, "hparams", {}), getattr(datamodule, "hparams", {})
    values = "; ".join(
        f"{key}: {model_hp.get(key)!r} in {type(module).__name__}, {data_hp.get(key)!r} in {type(datamodule).__name__}"
        for key in keys
    )
    flags = " ".join(f"--model.{key} {data_hp.get(key)!r}" for key in keys)
    return f"the model and the data disagree ({values}); give both the same value, e.g. {flags}"


def frames_detail(error: BaseException) -> str:
    return "".join(traceback.format_list(user_frames(error))) + "(--debug shows the full traceback)"


def _unwrapped(error: BaseException) -> BaseException:
    """The user's exception inside the ones jsonargparse wraps it in while instantiating classes."""
    while error.__cause__ is not None and _raised_in("jsonargparse", error):
        error = error.__cause__
    return error


def _raised_in(package: str, error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and f"{package}/" in Path(frames[-1].filename).as_posix()


def _class_being_built(error: BaseException) -> type | None:
    """The LightningModule, LightningDataModule, callback or logger whose ``__init__`` raised (innermost on
    the traceback)."""
    import lightning as L
    from lightning.pytorch.loggers import Logger

    found = None
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self") if tb.tb_frame.f_code.co_name == "__init__" else None
        if isinstance(owner, (L.LightningModule, L.LightningDataModule, L.Callback, Logger)):
            found = type(owner)
        tb = tb.tb_next
    return found


def raised_at(error: BaseException) -> str:
    """Where the user's own code raised ``error`` or an exception it wraps, as ``mymod.py:20 in
    training_step``; ``""`` when none of its frames is on the way (a library's own error)."""
    roots = _library_roots()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        own = [f for f in traceback.extract_tb(current.__traceback__) if not _in_library(f, roots)]
        if own:
            return f"{Path(own[-1].filename).name}:{own[-1].lineno} in {own[-1].name}"
        current = current.__cause__ or current.__context__
    return ""


def user_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback outside Python, installed packages and litforge: the user's
    own code. The raising frame alone when there is none (the error came from inside a library)."""
    frames = traceback.extract_tb(error.__traceback__)
    roots = _library_roots()
    own = [frame for frame in frames if not _in_library(frame, roots)]
    return own or frames[-1:]


def _in_library(frame: traceback.FrameSummary, roots: set[Path]) -> bool:
    """Whether ``frame`` is in Python, an installed package or litforge (``_library_roots``)."""
    return any(Path(frame.filename).resolve().is_relative_to(root) for root in roots)


def _library_roots() -> set[Path]:
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(Path(litforge.__file__).parent)
    return {root.resolve() for root in roots}
