"""Models that are not (only) classifiers: the output head decides what predict --ckpt_path, predict
--artifact and serve write, and all three write the same values in the same layout.

User-style modules live in a file in the test's working directory; everything runs through the real CLI.
"""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from litforge.errors import UsageError
from litforge.predictions.output_head import Classes, apply_head, declared_classes, infer, resolve_head
from serve_helpers import start_server, stop_server

HEADS_MODULE = '''
import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Table(L.LightningDataModule):
    """rows.npy (N, 8) from the working directory, targets a fixed linear map of them; no class names."""

    def __init__(self, targets: int = 1, classify: bool = False, batch_size: int = 8):
        super().__init__()
        self.x = torch.from_numpy(np.load("rows.npy"))
        y = self.x @ torch.linspace(-1, 1, 8 * targets).reshape(8, targets)
        self.y = y.argmax(1) if classify else y.squeeze(1) if targets == 1 else y
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)


class Net(L.LightningModule):
    def __init__(self, outputs: int = 1):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, outputs))
        self.example_input_array = torch.zeros(2, 8)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self(x), y)

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class Regressor(Net):
    """One float per sample, shape (B,)."""

    def forward(self, x):
        return self.layers(x).squeeze(-1)

    def loss(self, out, y):
        return nn.functional.mse_loss(out, y)


class LogitClassifier(Net):
    """Logits (B, C); declares num_classes, names no classes."""

    def __init__(self, num_classes: int = 3):
        super().__init__(num_classes)
        self.save_hyperparameters()

    def forward(self, x):
        return self.layers(x)

    def loss(self, out, y):
        return nn.functional.cross_entropy(out, y)


class MultiOutput(Net):
    """Three regression targets per sample, (B, 3), declared."""

    output_head = "multi_output"

    def forward(self, x):
        return self.layers(x)

    def loss(self, out, y):
        return nn.functional.mse_loss(out, y)
'''

KINDS = {
    "regression": ("Regressor", {"outputs": 1}, {"targets": 1}),
    "classification": ("LogitClassifier", {"num_classes": 3}, {"targets": 3, "classify": True}),
    "multi_output": ("MultiOutput", {"outputs": 3}, {"targets": 3}),
}
COLUMNS = {
    "regression": ["row", "prediction"],
    "classification": ["row", "prediction", "prob_0", "prob_1", "prob_2"],
    "multi_output": ["row", "prediction_0", "prediction_1", "prediction_2"],
}


def _config(kind: str) -> str:
    name, model_args, data_args = KINDS[kind]
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "enable_model_summary": False},
        "model": {"class_path": f"heads.{name}", "init_args": model_args},
        "data": {"class_path": "heads.Table", "init_args": {"batch_size": 8, "classify": False, **data_args}},
    }
    return json.dumps(config)  # JSON is YAML


def _read(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open() as handle:
        table = list(csv.reader(handle))
    return table[0], np.array(table[1:], dtype=np.float64)


@pytest.mark.slow
# regression and multi-output heads run the same path in tests/user_models/test_zoo.py (Regressor, LitModel)
@pytest.mark.parametrize("kind", ["classification"])
def test_checkpoint_artifact_and_server_predict_alike(cli, tmp_path: Path, kind: str) -> None:
    (tmp_path / "heads.py").write_text(textwrap.dedent(HEADS_MODULE))
    rows = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    (tmp_path / "config.yaml").write_text(_config(kind))
    experiment = KINDS[kind][0].lower()

    assert (fit := cli("fit", "--config", "config.yaml", "--run", "r")).returncode == 0, fit.output
    ckpt = tmp_path / "runs" / experiment / "r" / "checkpoints" / "last.ckpt"
    predict = cli("predict", "--config", "config.yaml", "--ckpt_path", str(ckpt), "--run", "r")
    assert predict.returncode == 0, predict.output
    export = cli("export", "--ckpt", str(ckpt), "--format", "onnx,pt2", "--out", "exported")
    assert export.returncode == 0, export.output
    record = json.loads((tmp_path / "exported" / "export.json").read_text())
    assert record["output_head"] == kind
    assert record["class_labels"] is None
    assert record["outputs"][0]["name"] == ("logits" if kind == "classification" else "output")
    artifact = cli("predict", "--artifact", "exported", "--input", "rows.npy", "--output", "artifact.csv")
    assert artifact.returncode == 0, artifact.output

    columns, from_checkpoint = _read(tmp_path / "runs" / experiment / "r" / "predictions.csv")
    artifact_columns, from_artifact = _read(tmp_path / "artifact.csv")
    assert columns == artifact_columns == COLUMNS[kind]
    assert from_checkpoint.shape == from_artifact.shape == (20, len(columns))
    np.testing.assert_allclose(from_artifact, from_checkpoint, rtol=1e-5, atol=1e-5)
    if kind == "classification":
        assert (from_artifact[:, 1] == from_artifact[:, 2:].argmax(axis=1)).all()
        np.testing.assert_allclose(from_artifact[:, 2:].sum(axis=1), 1, atol=1e-5)

    with (tmp_path / "server.log").open("w+") as log:
        process, base = start_server(tmp_path / "exported", log, "fastapi", "--threads", "1")
        try:
            response = httpx.post(f"{base}/predict", json={"inputs": rows[:5].tolist()}, timeout=60)
        finally:
            stop_server(process)
    assert response.status_code == 200, response.text
    body = response.json()
    served = np.array(body["predictions"], dtype=np.float64).reshape(5, -1)
    if kind == "classification":
        served = np.hstack([served, np.array(body["probabilities"])])
        assert "labels" not in body  # no class names
    else:
        assert set(body) == {"predictions"}
    np.testing.assert_allclose(served, from_checkpoint[:5, 1:], rtol=1e-5, atol=1e-5)


# -- the head rule, unit by unit --------------------------------------------------------------------


class _Module:
    def __init__(self, head: str | None = None, **hparams) -> None:
        if head is not None:
            self.output_head = head
        self.hparams = hparams


def test_the_head_is_inferred_from_shape_dtype_and_declared_classes() -> None:
    assert infer((), True, None)[0] == "regression"
    assert infer((1,), True, None)[0] == "regression"
    assert infer((1,), True, 2)[0] == "classification"  # one logit, two classes
    assert infer((3,), True, 3)[0] == "classification"
    assert infer((3,), True, None)[0] == "multi_output"
    assert infer((3,), True, 5)[0] == "multi_output"
    assert infer((4, 3), True, 3)[0] == "custom"
    assert infer((3,), False, 3)[0] == "custom"


def test_an_embedding_or_a_reconstruction_is_not_read_as_class_scores() -> None:
    """Both were, on labelled data: 64 values per sample and labels 0..9 made a 64-class classifier."""
    digits = Classes(labels_below=10)
    rows = np.random.default_rng(0).normal(size=(4, 64))
    assert resolve_head(_Module(), (64,), True, digits)[0] == "classification"  # nothing else known
    head, why = resolve_head(_Module(), (64,), True, digits, outputs=rows, input_rows=(64,))
    assert (head, why) == (
        "multi_output",
        "inferred: the output has forward's input shape (64,) per sample (a reconstruction)",
    )
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert resolve_head(_Module(), (64,), True, digits, outputs=unit)[0] == "multi_output"
    one_hot = np.eye(64)[:4]  # a confident softmax: length 1 too, but a distribution
    assert resolve_head(_Module(), (64,), True, digits, outputs=one_hot)[0] == "classification"
    # classes declared or counted in that number win: a segmenter of 3 classes on 3-channel images
    segmenter = resolve_head(_Module(), (3, 8, 8), True, Classes(count=3), input_rows=(3, 8, 8))
    assert segmenter[0] == "segmentation"


def test_a_declared_head_wins_and_must_fit_the_output() -> None:
    head, why = resolve_head(_Module("regression", num_classes=2), (1,), True, Classes(count=2))
    assert head == "regression" and "declared" in why
    with pytest.raises(UsageError, match="3 values per sample; declare 'multi_output'"):
        resolve_head(_Module("regression"), (3,), True, Classes())
    with pytest.raises(UsageError, match="output_head = 'logits'; choose one of"):
        resolve_head(_Module("logits"), (3,), True, Classes())


def test_classes_come_from_the_datamodule_or_the_module() -> None:
    class Data:
        class_names = ["cat", "dog"]

    assert declared_classes(_Module(num_classes=3)) == Classes(None, 3)
    assert declared_classes(_Module(n_classes=4)) == Classes(None, 4)
    assert declared_classes(_Module(num_classes=3), Data()) == Classes(["cat", "dog"], 2)
    assert declared_classes(_Module(label_names=["a", "b", "c"])) == Classes(["a", "b", "c"], 3)
    assert declared_classes(_Module(hidden=3)) == Classes()


def test_torchmetrics_metrics_or_integer_labels_count_the_classes_when_nothing_declares_them() -> None:
    import torch
    import torchmetrics

    class Module(torch.nn.Module):
        def __init__(self, **metrics: torch.nn.Module) -> None:
            super().__init__()
            self.metrics = torch.nn.ModuleDict(metrics)

    accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=10)
    counted = declared_classes(
        Module(acc=accuracy, f1=torchmetrics.F1Score(task="multiclass", num_classes=10))
    )
    assert counted.count == 10 and counted.counted_by == "MulticlassAccuracy(num_classes=10)"
    head, why = resolve_head(Module(acc=accuracy), (10,), True, counted)
    assert head == "classification" and "Module's MulticlassAccuracy(num_classes=10) counts" in why
    labels = declared_classes(Module(acc=torchmetrics.Accuracy(task="multilabel", num_labels=4)))
    assert resolve_head(Module(), (4,), True, labels)[0] == "multi_label"
    assert resolve_head(Module(), (5,), True, labels)[0] == "multi_output"  # not the metric's 4 labels
    disagree = Module(a=accuracy, b=torchmetrics.Accuracy(task="multiclass", num_classes=3))
    assert declared_classes(disagree) == Classes()
    assert declared_classes(Module(mse=torchmetrics.MeanSquaredError())) == Classes()

    # the seed's LitModel: output_dim=3, no metric, (x, y) batches of integer class labels
    hinted = declared_classes(Module(), labels=torch.tensor([0, 2, 1, 2]))
    assert hinted == Classes(labels_below=3)
    assert resolve_head(Module(), (3,), True, hinted)[0] == "classification"
    assert resolve_head(Module(), (2,), True, hinted)[0] == "multi_output"  # a label 2 is no class of 2
    assert resolve_head(Module(), (1,), True, hinted)[0] == "regression"
    assert declared_classes(Module(), labels=torch.tensor([[0, 1], [1, 0]])) == Classes()  # per token
    assert declared_classes(Module(), labels=torch.tensor([-100, 1])) == Classes()  # ignore_index
    assert declared_classes(_Module(num_classes=5), labels=torch.tensor([0, 1])) == Classes(None, 5)


def test_heads_turn_outputs_into_predictions() -> None:
    column = np.array([[0.5], [-2.0]], np.float32)  # (B, 1)
    np.testing.assert_array_equal(apply_head("regression", column).values, [0.5, -2.0])
    assert apply_head("regression", column).probabilities is None
    binary = apply_head("classification", column)
    assert binary.values.tolist() == [1, 0]
    np.testing.assert_allclose(binary.probabilities.sum(axis=1), 1)
    logits = np.array([[0.0, 2.0, 1.0]], np.float32)
    scores = apply_head("classification", logits)
    assert scores.values.tolist() == [1]
    np.testing.assert_allclose(scores.probabilities, np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)
    assert apply_head("multi_output", logits).values.shape == (1, 3)
    assert apply_head("custom", np.zeros((2, 4, 3))).values.shape == (2, 4, 3)


def test_class_scores_per_pixel_are_a_segmentation_whose_prediction_is_the_class_map() -> None:
    """(C, H, W) per sample from a module of C classes (declared, or counted by its MulticlassJaccardIndex):
    it was 'custom', raw logits in 768 columns, and declaring 'classification' was refused with no way out."""
    import torch
    import torchmetrics

    class Segmenter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.iou = torchmetrics.JaccardIndex(task="multiclass", num_classes=3)

    head, why = resolve_head(Segmenter(), (3, 4, 4), True, declared_classes(Segmenter()))
    assert head == "segmentation", why
    assert why.startswith("inferred: 3 class scores per position of (4, 4) and 3 classes (as ")
    assert why.endswith("Segmenter's MulticlassJaccardIndex(num_classes=3) counts)")
    assert resolve_head(_Module(num_classes=3), (3, 4, 4), True, Classes(count=3))[0] == "segmentation"
    assert (
        resolve_head(_Module(num_classes=3), (5, 4, 4), True, Classes(count=3))[0] == "custom"
    )  # not 3 scores
    assert resolve_head(_Module(), (3, 4, 4), True, Classes())[0] == "custom"  # no classes: raw values
    with pytest.raises(UsageError, match=r"not \(classes,\); class scores per pixel are 'segmentation'"):
        resolve_head(_Module("classification"), (3, 4, 4), True, Classes(count=3))
    assert resolve_head(_Module("segmentation"), (3, 4, 4), True, Classes())[0] == "segmentation"
    with pytest.raises(UsageError, match=r"not \(classes, H, W\)"):
        resolve_head(_Module("segmentation"), (3,), True, Classes())

    logits = np.zeros((2, 3, 2, 2), np.float32)
    logits[0, 2, 0, 1] = logits[1, 1, 1, 0] = 5.0  # one pixel of class 2 in sample 0, of class 1 in sample 1
    predicted = apply_head("segmentation", logits)
    assert (
        predicted.values.tolist() == [[[0, 2], [0, 0]], [[0, 0], [1, 0]]] and predicted.probabilities is None
    )


def test_the_json_answer_is_strict_json_even_when_the_model_overflows() -> None:
    """Starlette (the LitServe backend) refuses NaN/inf in a response: that was a 500 for a valid request."""
    from litforge.serve.codecs import encode

    answer = encode(apply_head("regression", np.array([1.5, np.inf, np.nan], np.float32)), None)
    assert answer == {"predictions": [1.5, None, None]}
    json.dumps(answer, allow_nan=False)
    named = encode(apply_head("classification", np.array([[0.0, 1.0]], np.float32)), ["cat", "dog"])
    assert named["predictions"] == [1] and named["labels"] == ["dog"]
    assert encode(apply_head("classification", np.array([[0.0, 1.0]], np.float32)), ["only one"]).keys() == {
        "predictions",
        "probabilities",
    }


@pytest.mark.parametrize("returns", ["probabilities", "logits", "argmax"])
def test_a_predict_step_that_post_processes_is_written_as_returned(tmp_path: Path, returns: str) -> None:
    """A user's ``predict_step`` returning softmax probabilities was passed through softmax again."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from litforge.callbacks.prediction_writer import CSVPredictionWriter

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.num_classes = 3
            self.layer = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.layer(x)

        def predict_step(self, batch, batch_idx):
            logits = self(batch[0])
            return {"probabilities": logits.softmax(-1), "logits": logits, "argmax": logits.argmax(-1)}[
                returns
            ]

    torch.manual_seed(0)
    model, x = Classifier(), torch.randn(10, 4)
    writer = CSVPredictionWriter(tmp_path / "predictions.csv")
    trainer = L.Trainer(
        callbacks=[writer], logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.predict(model, DataLoader(TensorDataset(x), batch_size=4))
    columns, table = _read(tmp_path / "predictions.csv")
    with torch.no_grad():
        probabilities = model(x).softmax(-1).numpy()
    if returns == "argmax":
        assert columns == ["row", "prediction"]
    else:  # probabilities as the module made them / forward's logits through the head: the same numbers
        assert columns == ["row", "prediction", "prob_0", "prob_1", "prob_2"]
        np.testing.assert_allclose(table[:, 2:], probabilities, rtol=1e-5, atol=1e-6)
    assert (table[:, 1] == probabilities.argmax(axis=1)).all()


def test_outputs_of_several_axes_per_sample_say_how_they_are_flattened() -> None:
    """A segmentation's (3, 16, 16) logits become prediction_0..767 with no shape in the CSV: a note gives it."""
    from litforge.predictions.csv_columns import flattening_note, header

    logits = apply_head("custom", np.zeros((2, 3, 16, 16), dtype=np.float32))
    assert header(logits, None)[-1] == "prediction_767"
    assert flattening_note(logits) == (
        "each sample's output of shape (3, 16, 16) is flattened row-major into prediction_0..prediction_767 "
        "(numpy: row.reshape(3, 16, 16))"
    )
    assert flattening_note(apply_head("multi_output", np.zeros((2, 4), dtype=np.float32))) is None


def test_a_multi_label_threshold_comes_from_the_module_or_its_metric():
    import torch
    import torchmetrics

    from litforge.predictions.output_head import label_threshold

    class Tagger(torch.nn.Module):
        def __init__(self, metric_threshold: float = 0.5) -> None:
            super().__init__()
            self.f1 = torchmetrics.classification.MultilabelF1Score(num_labels=3, threshold=metric_threshold)

    assert label_threshold(Tagger()) == (0.5, None)  # nothing said: 0.5
    assert label_threshold(Tagger(0.3)) == (0.3, "MultilabelF1Score(threshold=0.3)")
    tagged = Tagger(0.3)
    tagged.threshold = 0.2  # the module's own word wins over its metric's
    assert label_threshold(tagged)[0] == 0.2
    logits = np.log(np.array([[0.25, 0.4, 0.6]]) / (1 - np.array([[0.25, 0.4, 0.6]])))
    assert apply_head("multi_label", logits).values.tolist() == [[0, 0, 1]]
    assert apply_head("multi_label", logits, threshold=0.3).values.tolist() == [[0, 1, 1]]
