"""The knobs of ``litforge serve`` shared by both backends, and the request limits they imply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litforge.export import metadata
from litforge.export.row_shape import feature_inputs
from litforge.serve.codecs import RequestLimits


@dataclass
class ServeOptions:
    """Knobs of ``litforge serve`` (see its ``--help``)."""

    format: str | None = None  # the artifact format served (the CLI resolves the default before serving)
    max_batch_size: int = 64
    batch_timeout: float = 0.005
    workers: int = 1
    max_rows: int = 256
    max_body_bytes: int = 1 << 20
    threads: int | None = None
    timeout: float = 30.0


def request_limits(folder: Path, record: dict[str, Any], options: ServeOptions) -> RequestLimits:
    """What a ``POST /predict`` must look like for the export in ``folder`` (its export.json is ``record``):
    rows of its one input, or ``{name: rows}`` when ``forward`` takes several."""
    request_format = record.get("request_format", "features")
    if request_format != "features":
        return RequestLimits(request_format=request_format, max_rows=options.max_rows)
    inputs = feature_inputs(record, str(folder))
    if len(inputs) > 1:
        return RequestLimits(request_format=request_format, max_rows=options.max_rows, named_inputs=inputs)
    (only,) = inputs
    return RequestLimits(
        request_format=request_format,
        row_shape=only.shape,
        max_rows=options.max_rows,
        integer_bounds=only.bounds,
        features=only.features,
    )


def published_metadata(record: dict[str, Any], options: ServeOptions) -> dict[str, Any]:
    """``GET /info``'s ``model``: export.json without local paths, and ``served_format``, the format this
    server runs (onnx, pt2 or torchscript)."""
    return {**metadata.public(record), "served_format": options.format}
