"""The knobs of ``litforge serve`` shared by both backends, and the request limits they imply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litforge.export.artifact import feature_input
from litforge.export.input_values import integer_bounds
from litforge.export.row_shape import input_row_shape
from litforge.serve.codecs import RequestLimits


@dataclass
class ServeOptions:
    """Knobs of ``litforge serve`` (see its ``--help``)."""

    fmt: str | None = None
    max_batch_size: int = 64
    batch_timeout: float = 0.005
    workers: int = 1
    max_rows: int = 256
    max_body_bytes: int = 1 << 20
    threads: int | None = None
    timeout: float = 30.0


def request_limits(folder: Path, record: dict[str, Any], options: ServeOptions) -> RequestLimits:
    """What a ``POST /predict`` must look like for the export in ``folder`` (its export.json is ``record``);
    ``UsageError`` for an export that rows of numbers cannot feed (several inputs)."""
    request_format = record.get("request_format", "features")
    if request_format != "features":
        return RequestLimits(request_format=request_format, max_rows=options.max_rows)
    only = feature_input(record, folder)
    return RequestLimits(
        request_format=request_format,
        row_shape=input_row_shape(only, str(folder)),
        max_rows=options.max_rows,
        integer_bounds=integer_bounds(only),
    )
