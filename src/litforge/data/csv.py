"""Your own tabular data: a CSV file with numeric feature columns and one label column.

litforge fit --data CSVDataModule --data.path my.csv --data.label_column species
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from litforge.data.in_memory import InMemoryDataModule


class CSVDataModule(InMemoryDataModule):
    """Reads ``path`` (with a header row); labels may be numbers or strings (sorted into class names). A
    label column that reads as a regression target (fractional numbers, a distinct value in most rows)
    is refused.

    Args:
        path: the CSV file.
        label_column: name of the label column.
        feature_columns: the feature columns; all other columns when omitted.
        **kwargs: split, loader and normalisation options of ``InMemoryDataModule``.
    """

    def __init__(
        self,
        path: str,
        label_column: str = "label",
        feature_columns: list[str] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
        normalize: bool = True,
        fast_path: bool = True,
        pin_memory: bool = False,
        prefetch_to_device: bool = False,
    ) -> None:
        self.path = Path(path)
        self.label_column = label_column
        self.feature_columns = feature_columns
        super().__init__(
            batch_size,
            num_workers,
            val_fraction,
            test_fraction,
            seed,
            normalize,
            fast_path=fast_path,
            pin_memory=pin_memory,
            prefetch_to_device=prefetch_to_device,
        )

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if not self.path.is_file():
            raise FileNotFoundError(f"data.path: no such file: {self.path}")
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"data.path: {self.path} has no data rows")
        header = list(rows[0].keys())
        if self.label_column not in header:
            raise ValueError(
                f"data.label_column: {self.label_column!r} is not a column of {self.path} ({header})"
            )
        columns = self.feature_columns or [c for c in header if c != self.label_column]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"data.feature_columns: {missing} not in {self.path}")
        self.feature_names = list(columns)  # recorded by litforge export: exported rows are read by name
        features = np.array([[_feature(row, c, i, self.path) for c in columns] for i, row in enumerate(rows)])
        raw_labels = [row[self.label_column] for row in rows]
        class_names = sorted(set(raw_labels), key=_numeric_first)
        self._check_classification(raw_labels, class_names)
        index = {name: i for i, name in enumerate(class_names)}
        return features, np.array([index[label] for label in raw_labels], dtype=np.int64), class_names

    def _check_classification(self, labels: list[str], class_names: list[str]) -> None:
        """Refuse a label column that reads as a regression target: fractional numbers, or a distinct
        value in (nearly) every row; a class per value would train a classifier that cannot learn."""
        where = f"data.label_column: {self.label_column!r} of {self.path}"
        fractional = next((v for v in class_names if _numeric_first(v)[0] == 0 and float(v) % 1), None)
        if fractional is not None:
            raise ValueError(
                f"{where} holds fractional numbers (e.g. {fractional}); CSVDataModule trains a classifier "
                "on labels: a regression target needs a LightningDataModule and a model of your own"
            )
        if len(labels) >= 20 and len(class_names) > len(labels) // 2:
            raise ValueError(
                f"{where} has {len(class_names)} distinct labels in {len(labels)} rows: a class per value "
                "cannot be learned (a regression target? that needs a datamodule and model of your own)"
            )


def _numeric_first(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _feature(row: dict[str, str], column: str, index: int, path: Path) -> np.float32:
    """One feature cell as a number; a ``ValueError`` naming the column and line of an empty or text cell."""
    cell = row[column]
    try:
        return np.float32(float(cell))
    except (TypeError, ValueError):
        what = "is empty" if not (cell or "").strip() else f"holds {cell!r}, not a number"
        raise ValueError(
            f"data.path: column {column!r}, line {index + 2} of {path} {what} (CSVDataModule reads numeric "
            "features: fill or drop missing values, or leave the column out with --data.feature_columns)"
        ) from None
