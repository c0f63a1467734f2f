"""What a checkpoint may hold besides tensors, so that litforge can read it back with ``weights_only=True``.

allow_plain_data()               # once per process: before any checkpoint is saved or loaded
refuse_unloadable(checkpoint)    # litforge's CheckpointIOs, before each save (in the training thread)

A module's ``on_save_checkpoint`` often stores a ``pathlib.Path``, a numpy array or scalar, an
``argparse.Namespace`` or a ``datetime``: plain data that builds no code, allowed here beside torch's own
list. Anything else (the user's dataclass, an ``nn.Module`` in the hyperparameters) would make every
checkpoint of the run unreadable (resume, test, export all load weights-only): the first save refuses it,
naming where it sits, instead of training on over files nothing can read.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import io
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from litforge.errors import UsageError

_allowed: list[Any] = []


def _plain_data_types() -> list[Any]:
    """Classes and constructors whose unpickling builds data only (numpy's are found from its own pickles,
    so numpy 1 and 2 both work)."""
    numpy_array_constructor = np.ndarray.__reduce__(np.zeros(1))[0]
    numpy_scalar_constructor = np.float32(0).__reduce__()[0]
    return [
        pathlib.PosixPath,
        pathlib.PurePosixPath,
        pathlib.WindowsPath,
        pathlib.PureWindowsPath,
        np.ndarray,
        np.dtype,
        numpy_array_constructor,
        numpy_scalar_constructor,
        *{type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGUSV"},  # numpy 2 pickles some by class
        argparse.Namespace,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
    ]


def allow_plain_data() -> None:
    """Let weights-only loading (litforge's and Lightning's) read the plain data of ``_plain_data_types``.
    Once per process; a second call does nothing."""
    if not _allowed:
        _allowed.extend(_plain_data_types())
        torch.serialization.add_safe_globals(_allowed)


def refuse_unloadable(checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint that weights-only loading could not read back. Its structure is pickled without
    the tensors (milliseconds) and scanned as torch scans a file.

    Raises:
        UsageError: naming the entries that hold objects of other classes and those classes.
    """
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is None:  # torch before 2.5: loading says it instead
        return
    allow_plain_data()
    buffer = io.BytesIO()
    torch.save(_without_tensors(checkpoint, {}), buffer)
    buffer.seek(0)
    unsafe = set(scan(buffer))
    if not unsafe:
        return
    found = [f"{where} ({name})" for where, name in _entries_of(checkpoint, unsafe)][:3]
    held = ", ".join(found) or ", ".join(sorted(unsafe))
    raise UsageError(
        f"the checkpoint holds {held}: objects litforge cannot load back (it reads checkpoints weights-only, "
        "which unpickles tensors, numbers, strings, containers, paths, numpy arrays and datetimes, and no "
        "other class, since unpickling one can run code); store it as plain data (a dict, a string) in "
        "on_save_checkpoint or the hyperparameters. Not saved: every later command would refuse the file"
    )


def _without_tensors(value: Any, copied: dict[int, Any]) -> Any:
    """``value`` with its tensors as ``None`` and its numpy arrays one element long (same class and dtype: the same
    globals to scan, none of the bytes), through dicts, lists and tuples (copied once each: ``copied``
    keeps a container met twice, or inside itself, one copy)."""
    if isinstance(value, torch.Tensor):
        return None
    if isinstance(value, np.ndarray):
        return np.zeros(1, value.dtype)
    if id(value) in copied:
        return copied[id(value)]
    if isinstance(value, dict):
        stripped = copied[id(value)] = copy.copy(value)  # keeps the class (OrderedDict, defaultdict)
        for key, item in value.items():
            stripped[key] = _without_tensors(item, copied)
        return stripped
    if type(value) is list:
        stripped = copied[id(value)] = []
        stripped.extend(_without_tensors(item, copied) for item in value)
        return stripped
    if type(value) is tuple:
        return tuple(_without_tensors(item, copied) for item in value)
    return value


def _entries_of(
    value: Any, classes: set[str], where: str = "", seen: set[int] | None = None
) -> Iterator[tuple[str, str]]:
    """``(key path, class)`` of the objects in ``value`` whose class (``module.qualname``) is in
    ``classes`` (or that are such a class or function); tensors, numbers and arrays are not looked into,
    an object met twice (or inside itself) once."""
    seen = set() if seen is None else seen
    if (
        isinstance(value, (torch.Tensor, int, float, str, bytes, np.ndarray))
        or value is None
        or id(value) in seen
    ):
        return
    seen.add(id(value))
    kind = value if isinstance(value, type) else type(value)  # a class stored as a value is one too
    name = f"{kind.__module__}.{kind.__qualname__}"
    own = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"  # a function stored
    if name in classes or own in classes:
        yield where or "the checkpoint", name if name in classes else own
        return
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        items = vars(value).items() if hasattr(value, "__dict__") and not isinstance(value, type) else ()
    for key, item in items:
        yield from _entries_of(item, classes, f"{where}.{key}" if where else str(key), seen)
