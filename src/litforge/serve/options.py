"""The knobs of ``litforge serve`` shared by both backends, and the request limits they imply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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


def request_limits(record: dict[str, Any], options: ServeOptions) -> RequestLimits:
    """What a ``POST /predict`` must look like for the export described by ``record`` (export.json)."""
    request_format = record.get("request_format", "features")
    shape = record["inputs"][0]["shape"][1:]
    row_width = int(np.prod([int(s) for s in shape])) if request_format == "features" else 0
    return RequestLimits(request_format=request_format, row_width=row_width, max_rows=options.max_rows)
