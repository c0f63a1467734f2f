"""An export folder opened for inference, without the training code (used by ``predict --artifact`` and ``serve``).

artifact = Artifact.open(Path("runs/classifier/version_0/export"))
predictions = artifact.predict(np.zeros((2, 64), np.float32))  # .values, .probabilities (classifiers)

An export of several outputs (``litforge.export.outputs``) predicts ``{name: values}``, each output as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from litforge.errors import UsageError
from litforge.export import metadata
from litforge.export.formats import FORMATS, Runner, load_runner
from litforge.export.row_shape import FeatureInput, feature_inputs
from litforge.predictions.output_head import DEFAULT_THRESHOLD, NAMED_OUTPUTS, Predictions, apply_head

Rows = tuple[np.ndarray, ...]  # rows of every input of forward, one array each (N, *row shape)
# the model's outputs for some rows, one array (N, ...) each, in export.json's order
Outputs = list[np.ndarray]
Answer = Predictions | dict[str, np.ndarray]  # one output's predictions, or several outputs by name


@dataclass
class Artifact:
    """One format of an export folder, loaded in its runtime, plus its ``export.json``."""

    folder: Path
    format: str
    metadata: dict[str, Any]
    runner: Runner
    tokenizer: Any = None

    @classmethod
    def open(
        cls, folder: Path, fmt: str | None = None, threads: int | None = None, verify: bool = True
    ) -> Artifact:
        """Load ``fmt`` (default: the first of onnx, pt2, torchscript present) from ``folder``."""
        record = metadata.read(folder)
        available = {name: entry for name, entry in record["formats"].items() if entry.get("file")}
        if fmt is None:
            fmt = next((name for name in FORMATS if name in available), None)
        if fmt not in available:
            raise UsageError(f"--format: {folder} has no {fmt} artifact (it has: {', '.join(available)})")
        entry = available[fmt]
        path = metadata.member(folder, entry["file"], f"{folder / metadata.FILENAME}: formats.{fmt}.file")
        if not path.is_file():
            raise UsageError(f"{path} is missing; re-export with 'litforge export'")
        if verify and metadata.sha256(path) != entry.get("sha256"):
            raise UsageError(f"{path} does not match the sha256 in export.json; it changed after export")
        names = [spec["name"] for spec in record["inputs"]]
        try:
            runner = load_runner(fmt, path, names, threads)
        except UsageError:
            raise
        except Exception as err:
            raise UsageError(f"cannot load {path} in {entry.get('runtime', fmt)}: {err}") from None
        artifact = cls(folder, fmt, record, runner)
        if artifact.request_format == "texts":
            artifact.tokenizer = _load_tokenizer(folder)
        else:
            feature_inputs(record, str(folder))  # an input with two dynamic axes: refused now
        return artifact

    # -- what the artifact takes ------------------------------------------------------------------
    @property
    def request_format(self) -> str:
        return self.metadata.get("request_format", "features")

    @cached_property
    def inputs(self) -> tuple[FeatureInput, ...]:
        """The inputs of ``forward`` as rows (``litforge.export.row_shape``); features models only."""
        return feature_inputs(self.metadata, str(self.folder))

    @property
    def class_labels(self) -> list[str] | None:
        return self.metadata.get("class_labels")

    @property
    def output_names(self) -> list[str]:
        """The outputs' names (one for most models; several when forward returns a tuple or dict of heads)."""
        return [str(entry["name"]) for entry in self.metadata.get("outputs") or []] or ["output"]

    @property
    def output_head(self) -> str:
        """How outputs become predictions (``litforge.predictions.output_head``); exports before heads were recorded
        were all classifiers."""
        return self.metadata.get("output_head", "classification")

    # -- inference ---------------------------------------------------------------------------------
    def outputs(self, rows: np.ndarray | Rows) -> Outputs:
        """Raw rows (N, *row shape), one array per input (a tuple) or the one input's -> the outputs."""
        arrays = rows if isinstance(rows, tuple) else (rows,)
        return self._run(
            *(np.ascontiguousarray(a, dtype=i.dtype) for a, i in zip(arrays, self.inputs, strict=True))
        )

    def outputs_for_texts(self, texts: list[str]) -> Outputs:
        """Texts -> tokenized with the exported tokenizer -> the model's outputs."""
        # truncated as in training (export.json's text_max_length), else at the tokenizer's own limit
        limit = self.metadata.get("text_max_length")
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="np")
        arrays = []
        for spec in self.metadata["inputs"]:
            if spec["name"] not in encoded:
                raise UsageError(f"the exported tokenizer does not produce input '{spec['name']}'")
            arrays.append(np.ascontiguousarray(encoded[spec["name"]], dtype=np.dtype(spec["dtype"])))
        return self._run(*arrays)

    def outputs_by_shape(self, parts: list[Rows]) -> list[Outputs]:
        """Rows of several requests, whose shapes may differ along a dynamic axis (sequences of several
        lengths) -> each part's outputs, with one model call per row shape."""
        outputs: list[Outputs] = [[]] * len(parts)
        shapes = [tuple(array.shape[1:] for array in part) for part in parts]
        for shape in dict.fromkeys(shapes):
            members = [i for i, s in enumerate(shapes) if s == shape]
            together = tuple(
                np.concatenate(arrays) for arrays in zip(*(parts[i] for i in members), strict=True)
            )
            pieces = split_rows(self.outputs(together), [len(parts[i][0]) for i in members])
            for i, piece in zip(members, pieces, strict=True):
                outputs[i] = piece
        return outputs

    def predict(self, rows: np.ndarray | Rows) -> Answer:
        """Rows -> predictions, as export.json's ``output_head`` says."""
        return self.postprocess(self.outputs(rows))

    def postprocess(self, outputs: Outputs) -> Answer:
        """The model's outputs -> predictions, as export.json's ``output_head`` says: several outputs as they
        are, by name."""
        if self.output_head == NAMED_OUTPUTS:
            return dict(zip(self.output_names, outputs, strict=True))
        return apply_head(self.output_head, outputs[0], self.metadata.get("threshold", DEFAULT_THRESHOLD))

    def _run(self, *arrays: np.ndarray) -> Outputs:
        """The runtime's outputs that export.json names (a Hugging Face graph may return more than its logits)."""
        return self.runner(*arrays)[: len(self.output_names)]


def split_rows(outputs: Outputs, sizes: list[int]) -> list[Outputs]:
    """Outputs for several parts' rows, one after the other -> each part's outputs (``sizes``: its rows)."""
    ends = np.cumsum(sizes)[:-1]
    return [list(piece) for piece in zip(*(np.split(output, ends) for output in outputs), strict=True)]


def _load_tokenizer(folder: Path) -> Any:
    tokenizer_dir = folder / "tokenizer"
    if not tokenizer_dir.is_dir():
        raise UsageError(f"{folder} takes texts but has no tokenizer/ folder; re-export the model")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UsageError("serving a text model needs transformers: pip install 'litforge[hf]'") from None
    return AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
