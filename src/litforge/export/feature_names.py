"""The names of a features model's input columns, recorded in export.json so that rows are read by name.

A tabular model's export takes rows of numbers by position; a CSV whose columns come in another order, or a
client that sends them so, gets wrong predictions with no error. When the names are known, export.json
records them with the input (``"features": ["f0", "f1", ...]``), and then

- ``litforge predict --artifact`` reads a CSV's header: columns by name, in any order, extra columns (an
  id, the target) left out with a note; a missing column is refused in one line naming it;
- ``litforge serve`` also takes records, ``{"inputs": [{"f0": 1.5, "f1": 0.2, ...}, ...]}``.

Where the names come from, the first that has as many names as the input has values per row:
``litforge_export_spec()["feature_names"]``, the datamodule's ``feature_names`` (litforge's
``CSVDataModule`` sets it) or ``feature_columns``, the module's ``feature_names`` (attribute or
hyperparameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litforge.errors import UsageError

ATTRIBUTES = ("feature_names", "feature_columns")


def declared_feature_names(*owners: Any) -> list[str] | None:
    """The first ``feature_names``/``feature_columns`` that ``owners`` (a datamodule, a module; ``None`` ones
    skipped) declare as a list of distinct strings; module hyperparameters count too."""
    for owner in owners:
        if owner is None:
            continue
        hparams = getattr(owner, "hparams", None) or {}
        for attribute in ATTRIBUTES:
            try:
                value = getattr(owner, attribute, None)
            except Exception:  # a property that needs data that is not loaded: no names from it
                value = None
            value = hparams.get(attribute) if value is None and isinstance(hparams, dict) else value
            if _names(value):
                return [str(name) for name in value]
    return None


def _names(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(name, str) and name for name in value)
        and len(set(value)) == len(value)
    )


def columns_by_name(
    header: Sequence[str], features: Sequence[str], where: str
) -> tuple[list[int], list[str]]:
    """For a CSV ``header`` and the export's ``features``: the column index of each feature, in the
    features' order, and the header's columns left out; ``UsageError`` naming the features it lacks."""
    cells = [cell.strip() for cell in header]
    missing = [name for name in features if name not in cells]
    if missing:
        raise UsageError(
            f"--input: {where} has no column {', '.join(map(repr, missing))} (the model takes "
            f"{', '.join(features)}; its header has {', '.join(cells)})"
        )
    return [cells.index(name) for name in features], [cell for cell in cells if cell not in features]


def record_row(record: dict[str, Any], features: Sequence[str]) -> list[Any]:
    """``{"f0": 1.5, ...}`` -> ``[1.5, ...]`` in the features' order; ``ValueError`` naming missing or unknown
    keys."""
    missing = [name for name in features if name not in record]
    unknown = [str(key) for key in record if key not in features]
    if missing or unknown:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unknown {', '.join(unknown)}" if unknown else "",
        ]
        raise ValueError(f"{'; '.join(filter(None, parts))} (the model takes {', '.join(features)})")
    return [record[name] for name in features]


def check_width(names: list[str] | None, width: int, owner: str) -> list[str] | None:
    """``names`` when there is one per value of a row; declared by the module's export spec, a mismatch is
    refused (``UsageError``), found elsewhere it is not recorded."""
    if names is None or len(names) == width:
        return names
    if owner:
        raise UsageError(
            f"{owner}.litforge_export_spec(): {len(names)} feature_names for rows of {width} values"
        )
    return None
