"""Request validation and response encoding for ``POST /predict`` (pure functions; no server needed).

Request:  ``{"inputs": [[...], ...]}`` (one or many rows of raw features, flat or nested as the model's
input; records ``{"f0": 1.5, ...}`` when export.json names the features) or, for text models,
``{"texts": ["...", ...]}``. Response: ``{"predictions": [...]}``, one entry per row (a class index, a value,
or a list of values: one 0/1 per label for a multi-label model, by the model's output head), plus
``"probabilities": [[...]]`` and ``"labels": [...]`` for a classifier (labels when its classes have names; a
list of the positive labels' names per row for a multi-label model). A model whose forward returns several
outputs answers ``{"predictions": {"<output name>": [...], ...}}``, each output's values as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from litforge.export.feature_names import record_row
from litforge.export.input_values import BOOL_BOUNDS, value_problem
from litforge.export.row_shape import FeatureInput, RowShape, axis_mismatch, concrete, takes
from litforge.predictions import csv_columns
from litforge.predictions.output_head import Predictions

FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(Exception):
    """A bad request: answered with ``status`` (4xx) and ``message``; the server stays healthy."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RequestLimits:
    """What a request must look like for one export folder."""

    request_format: str = "features"
    max_rows: int = 256
    max_text_chars: int = 20_000
    integer_bounds: tuple[int, int] | None = None  # an integer input's lowest and highest value (token ids)
    # one row's shape (litforge.export.row_shape), e.g. (3, 16, 16) or ("sequence",): a row is flat or nested so
    row_shape: RowShape = ()
    # an export whose forward takes several inputs: {"inputs": {name: rows, ...}}, each input's rows as above
    named_inputs: tuple[FeatureInput, ...] = ()
    # the names of a row's values (export.json's features): a row may also be a record {"f0": 1.5, ...}
    features: tuple[str, ...] | None = None


def parse_body(body: bytes, limits: RequestLimits) -> Any:
    """Bytes -> JSON value; ``RequestError(400)`` when the body is not UTF-8 JSON."""
    if not body:
        raise RequestError(400, f"empty body; send JSON like {_example(limits)}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # bad UTF-8/JSON, 4300+ digit ints, absurd nesting
        raise RequestError(400, f"body is not valid JSON: {err}") from None


def validate(payload: Any, limits: RequestLimits) -> None:
    """Raise ``RequestError`` (422 / 413) unless ``payload`` is a well-formed request for ``limits``."""
    key = "texts" if limits.request_format == "texts" else "inputs"
    if not isinstance(payload, dict):
        kind = "a list" if isinstance(payload, list) else f"a JSON {type(payload).__name__}"
        raise RequestError(422, f"the body is {kind}, not a JSON object: send {_example(limits)}")
    if key not in payload:
        other = "inputs" if key == "texts" else "texts"
        why = (
            f" (this export takes {'texts' if key == 'texts' else 'numbers, not texts'}: see /info)"
            if other in payload
            else ""
        )
        raise RequestError(422, f"missing '{key}'{why}: send a JSON object like {_example(limits)}")
    items = payload[key]
    if limits.named_inputs:
        _validate_named_inputs(items, limits)
        return
    if key == "inputs" and isinstance(items, list) and items and type(items[0]) in (int, float):
        raise RequestError(
            422, "'inputs' is a list of rows: wrap a single row in brackets, {\"inputs\": [[...]]}"
        )
    _check_rows_list(items, key, limits)
    if key == "texts":
        _validate_texts(items, limits)
    else:
        _validate_rows(items, limits)


def _example(limits: RequestLimits) -> str:
    if limits.request_format == "texts":
        return '{"texts": ["..."]}'
    if limits.named_inputs:
        return '{"inputs": {' + ", ".join(f'"{i.name}": [...]' for i in limits.named_inputs) + "}}"
    return '{"inputs": [[...], ...]}'


def _check_rows_list(items: Any, where: str, limits: RequestLimits) -> None:
    if isinstance(items, dict) and where == "inputs":
        raise RequestError(422, "'inputs' is an object, but the model takes one input: send a list of rows")
    if not isinstance(items, list) or not items:
        raise RequestError(422, f"'{where}' must be a non-empty list")
    if len(items) > limits.max_rows:
        raise RequestError(413, f"{len(items)} rows in one request; the limit is {limits.max_rows}")


def _validate_named_inputs(inputs: Any, limits: RequestLimits) -> None:
    """``{"inputs": {name: rows}}``: every input of ``forward`` by name, each with its own rows, as many."""
    names = [i.name for i in limits.named_inputs]
    if not isinstance(inputs, dict) or sorted(inputs) != sorted(names):
        given = f"has the keys {sorted(map(str, inputs))}" if isinstance(inputs, dict) else "is not an object"
        raise RequestError(
            422, f"'inputs' {given}; the model takes {len(names)} inputs by name: send {_example(limits)}"
        )
    shapes = {}
    for spec in limits.named_inputs:
        where = f"inputs.{spec.name}"
        _check_rows_list(inputs[spec.name], where, limits)
        one = replace(
            limits, row_shape=spec.shape, integer_bounds=spec.bounds, named_inputs=(), features=spec.features
        )
        values = _validate_rows(inputs[spec.name], one, where, numbers_are_rows=True)
        shapes[spec.name] = (spec.shape, concrete(spec.shape, values) or ())
    if mismatch := axis_mismatch(shapes):
        raise RequestError(
            422, f"inputs.{mismatch}: inputs that share a dynamic axis take one length along it"
        )
    counts = {name: len(inputs[name]) for name in names}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{n} {c}" for n, c in counts.items())
        raise RequestError(
            422, f"the inputs have different numbers of rows ({listed}); give each input one per row"
        )


def _validate_rows(
    rows: list[Any], limits: RequestLimits, where: str = "inputs", numbers_are_rows: bool = False
) -> int:
    """Check every row; the number of values in each (rows of one request share it)."""
    try:
        return _checked_rows(rows, limits, where, numbers_are_rows)
    except RequestError as error:
        if _is_one_row(rows, limits.row_shape):  # {"inputs": image} for {"inputs": [image]}
            raise RequestError(
                error.status, f"{error.message}; {where} is a list of rows: send one row as [row]"
            ) from None
        raise


def _is_one_row(value: Any, row_shape: RowShape) -> bool:
    """Whether ``value`` is nested like one row of ``row_shape`` (a dynamic axis takes any length)."""
    shape = []
    while isinstance(value, list) and value:
        shape.append(len(value))
        value = value[0]
    return len(shape) == len(row_shape) and all(
        not isinstance(size, int) or size == found for size, found in zip(row_shape, shape, strict=True)
    )


def _checked_rows(rows: list[Any], limits: RequestLimits, where: str, numbers_are_rows: bool) -> int:
    first_length = 0
    for index, row in enumerate(rows):
        values = _row_values(row, f"{where}[{index}]", limits, numbers_are_rows)
        first_length = first_length or len(values)
        if len(values) != first_length:  # a dynamic axis: one length per request, as one array has
            raise RequestError(
                422,
                f"{where}[{index}] has {len(values)} values but {where}[0] has {first_length}: the rows of "
                "one request share one length (send rows of other lengths in another request)",
            )
        for value in values:
            if isinstance(value, bool) and limits.integer_bounds == BOOL_BOUNDS:
                continue  # true/false for a bool input (a mask)
            if type(value) is not float and type(value) is not int:  # bool and str are not numbers
                flag = " (send 1 or 0 for true or false)" if isinstance(value, bool) else ""
                raise RequestError(422, f"{where}[{index}] has a non-numeric value {_as_json(value)}{flag}")
            if limits.integer_bounds is not None:
                if problem := value_problem(value, limits.integer_bounds):
                    raise RequestError(422, f"{where}[{index}]: {problem}")
            elif not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise RequestError(
                    422, f"{where}[{index}] has a non-finite or out-of-range value {_as_json(value)}"
                )
    return first_length


def _row_values(row: Any, where: str, limits: RequestLimits, numbers_are_rows: bool = False) -> list[Any]:
    """A row's values: a flat list of numbers (as many as ``row_shape`` takes), or lists nested as
    ``row_shape`` (an image's ``[3][16][16]``, as ``/info`` shows its input)."""
    width = takes(limits.row_shape)
    nested = f" (or nested as {list(limits.row_shape)})" if len(limits.row_shape) > 1 else ""
    if numbers_are_rows and not limits.row_shape and not isinstance(row, list):
        return [row]  # a row of a 1-D input (lengths): one number (checked as a number by the caller)
    if isinstance(row, dict) and limits.features:
        try:
            return record_row(row, limits.features)
        except ValueError as error:
            raise RequestError(422, f"{where}: {error}") from None
    if not isinstance(row, list):
        records = f", or a record {{name: value}} of {', '.join(limits.features)}" if limits.features else ""
        raise RequestError(422, f"{where} must be a list of {width} numbers{nested}{records}")
    if nested and row and isinstance(row[0], list):
        return _nested_values(row, limits.row_shape, where, limits)
    if concrete(limits.row_shape, len(row)) is None:
        raise RequestError(422, f"{where} has {len(row)} values; the model takes {width}{nested}")
    return row


def _nested_values(value: Any, shape: RowShape, where: str, limits: RequestLimits) -> list[Any]:
    size = shape[0]
    if not isinstance(value, list) or (len(value) != size if isinstance(size, int) else not value):
        found = f"{len(value)} entries" if isinstance(value, list) else f"the value {_as_json(value)}"
        raise RequestError(
            422,
            f"{where} has {found} where a row nested as {list(limits.row_shape)} has a list of {size}",
        )
    if len(shape) == 1:
        return value
    return [
        v for i, part in enumerate(value) for v in _nested_values(part, shape[1:], f"{where}[{i}]", limits)
    ]


def _as_json(value: Any) -> str:
    """A request value as the client wrote it (``true``, ``null``, ``"a"``), not as Python prints it."""
    try:
        return json.dumps(value, allow_nan=True)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


def _validate_texts(texts: list[Any], limits: RequestLimits) -> None:
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f"texts[{index}] must be a string")
        if not text.strip():  # answered with the model's guess for no text at all, as predict refuses it
            raise RequestError(422, f"texts[{index}] is blank: send the text to predict")
        if len(text) > limits.max_text_chars:
            raise RequestError(
                413, f"texts[{index}] has {len(text)} characters; the limit is {limits.max_text_chars}"
            )


def decode_inputs(payload: dict[str, Any], inputs: tuple[FeatureInput, ...]) -> tuple[np.ndarray, ...]:
    """A validated ``inputs`` payload -> one array (N, *row shape) per input of ``forward``: the rows of the
    one input, or ``{name: rows}`` for several."""
    if len(inputs) == 1 and not isinstance(payload["inputs"], dict):
        return (_decode_input(payload["inputs"], inputs[0]),)
    return tuple(_decode_input(payload["inputs"][i.name], i) for i in inputs)


def _decode_input(rows: list[Any], spec: FeatureInput) -> np.ndarray:
    """One input's validated rows, records ``{"f0": 1.5, ...}`` of its ``features`` among them."""
    rows = [record_row(row, spec.features or ()) if isinstance(row, dict) else row for row in rows]
    return decode_rows(rows, spec.shape, np.dtype(spec.dtype))


def decode_rows(rows: list[Any], row_shape: RowShape, dtype: np.dtype) -> np.ndarray:
    """Validated rows of one input (flat or nested, all of one length) -> array (N, *row shape)."""
    if all(not isinstance(row, list) or not row or not isinstance(row[0], list) for row in rows):  # flat
        flat = np.asarray(rows, dtype=dtype)
        return flat.reshape(len(flat), *concrete(row_shape, math.prod(flat.shape[1:])))  # type: ignore[misc]
    arrays = [np.asarray(row, dtype=dtype) for row in rows]
    return np.stack([a.reshape(concrete(row_shape, a.size)) for a in arrays])  # type: ignore[arg-type]


def encode(predictions: Predictions | dict[str, np.ndarray], class_names: list[str] | None) -> dict[str, Any]:
    """One request's slice of the batch -> the JSON response (the values of ``predictions.csv``); several
    outputs (a dict) -> ``{"predictions": {name: values}}``."""
    if isinstance(predictions, dict):
        return {"predictions": {name: _json_values(values) for name, values in predictions.items()}}
    response: dict[str, Any] = {"predictions": _json_values(predictions.values)}
    if predictions.probabilities is not None:
        response["probabilities"] = _json_values(predictions.probabilities)
        names = csv_columns.labels(predictions, class_names)
        if names and csv_columns.is_multi_label(predictions):  # the names of each row's positive labels
            response["labels"] = [
                [n for n, on in zip(names, row, strict=True) if on] for row in predictions.values
            ]
        elif names:
            response["labels"] = [names[int(p)] for p in predictions.values]
    return response


def _json_values(array: np.ndarray) -> list[Any]:
    """An array as nested lists, NaN and infinities as ``null`` (JSON has neither: a model output that
    overflows must not turn a valid request into a 500)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array.astype(object), None)
    return array.tolist()
