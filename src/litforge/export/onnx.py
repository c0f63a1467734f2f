"""ONNX via the dynamo exporter (``litforge export --ckpt FILE --format onnx``), run with onnxruntime.

``torch.onnx.export(..., dynamo=True)`` traces with ``torch.export`` and keeps the named dynamic axes;
the legacy TorchScript-based exporter is used only when the dynamo exporter fails, and export.json says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from litforge.atomic_files import atomic_path

if TYPE_CHECKING:  # loading a model.onnx (serve, predict --artifact) needs only onnxruntime
    import torch

    from litforge.export.spec import ExportSpec

FILENAME = "model.onnx"
RUNTIME = "onnxruntime"
INSTALL_HINT = "pip install 'litforge[export]'"


def export(module: torch.nn.Module, spec: ExportSpec, path: Path) -> dict[str, Any]:
    """Write ``path`` (atomically) and return how it was made (``exporter``, ``opset``)."""
    import torch

    from litforge.errors import first_line

    _require("onnx", "onnxscript")
    from litforge._compat.torch import quiet_onnx_op_registration

    quiet_onnx_op_registration()
    with atomic_path(path) as tmp:
        info: dict[str, Any]
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    module,
                    spec.inputs,
                    dynamo=True,
                    input_names=spec.input_names,
                    output_names=spec.output_names,
                    dynamic_shapes=spec.dynamic_shapes(),
                    verbose=False,
                )
            program.save(str(tmp), external_data=False)
            _name_dynamic_axes(tmp, spec.dynamic_axes)
            info = {"exporter": "dynamo"}
        except Exception as err:  # the dynamo exporter cannot handle every graph; the legacy one may
            cause = _deepest_cause(err)  # "Failed to export the model with torch.export" says nothing more
            reason = f"{type(cause).__name__}: {first_line(cause)}"
            try:
                with warnings.catch_warnings(), _native_output_quiet():  # its C++ warnings and IR dumps
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        module,
                        spec.inputs,
                        str(tmp),
                        dynamo=False,
                        input_names=spec.input_names,
                        output_names=spec.output_names,
                        dynamic_axes=spec.dynamic_axes,
                    )
            except Exception as legacy:
                raise RuntimeError(
                    f"{reason} (the legacy exporter failed too: {type(legacy).__name__}: {first_line(legacy)})"
                ) from err
            print(
                f"litforge: note: onnx: the dynamo exporter failed ({reason}); the legacy one made it",
                file=sys.stderr,
            )
            info = {"exporter": "legacy", "fallback_reason": reason}
    import onnx

    info["opset"] = next(
        (o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")), None
    )
    return info


def _deepest_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


@contextlib.contextmanager
def _native_output_quiet() -> Iterator[None]:
    """File descriptors 1 and 2 to /dev/null: torch's legacy exporter writes C++ warnings, and when it fails
    its whole TorchScript graph, there, past Python's ``sys.stdout``/``sys.stderr``."""
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        with open(os.devnull, "w") as null:
            for fd in (1, 2):
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for stream in streams:  # what Python buffered meanwhile goes to /dev/null too
            stream.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _name_dynamic_axes(path: Path, dynamic_axes: dict[str, dict[int, str]]) -> None:
    """The dynamo exporter names dynamic axes after torch's symbols (``s23``); a C++/JS consumer reading the
    graph should see the spec's names (``batch``, ``sequence``), on the inputs and wherever the symbol recurs."""
    import onnx

    model = onnx.load(str(path))
    renames = {
        dim.dim_param: dynamic_axes[value.name][axis]
        for value in model.graph.input
        for axis, dim in enumerate(value.type.tensor_type.shape.dim)
        if dim.dim_param and axis in dynamic_axes.get(value.name, {})
    }
    if not renames:
        return
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]
    onnx.save(model, str(path))


def load(path: Path, input_names: list[str], threads: int | None = None):
    """An onnxruntime CPU session over ``path`` as a callable: numpy inputs -> every output."""
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a run that fails raises, and litforge reports it in one line
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        return session.run(None, dict(zip(input_names, arrays, strict=True)))

    return run


def _require(*names: str) -> None:
    import importlib.util

    from litforge.errors import UsageError

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise UsageError(f"ONNX export needs {', '.join(missing)}: {INSTALL_HINT}")
