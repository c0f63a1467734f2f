"""An image model whose datamodule writes its data in ``prepare_data``, and a multi-label model: exported,
predicted from the export and served with the same values as ``predict`` from the checkpoint."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
from user_helpers import QUICK, csv_rows

from serve_helpers import predict_once, start_server, stop_server


def test_a_multi_label_model_predicts_exports_and_serves_per_label(project, user_cli):
    """``predict_step`` returns sigmoid(forward): the export applies the same sigmoid (head multi_label),
    not a softmax across labels; each label is 0/1 by its own probability above the module's threshold (0.3
    here: export and serve used 0.5 whatever the module said), named by ``label_names``."""
    import usermods

    multi_label = [
        "--model",
        "usermods.MultiLabel",
        "--data",
        "usermods.MultiLabelData",
        "--model.threshold",
        "0.3",
    ]
    fit = user_cli("fit", *multi_label, *QUICK, "--run", "ml")
    assert fit.returncode == 0, fit.output
    run = project / "runs" / "multilabel" / "ml"
    assert user_cli("predict", "--run", "ml").returncode == 0
    from_checkpoint = csv_rows(run / "predictions.csv")
    names = ["red", "green", "blue", "round"]
    assert list(from_checkpoint[0]) == [
        "row",
        *(f"prediction_{n}" for n in names),
        *(f"prob_{n}" for n in names),
    ]
    for row in from_checkpoint:
        assert all(row[f"prediction_{n}"] == str(int(float(row[f"prob_{n}"]) > 0.3)) for n in names)
    assert any(0.3 < float(row[f"prob_{n}"]) <= 0.5 for row in from_checkpoint for n in names)  # it matters

    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--format", "onnx")
    assert exported.returncode == 0, exported.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["output_head"] == "multi_label" and record["threshold"] == 0.3
    x, _ = usermods.multilabel_rows()
    np.savetxt(project / "rows.csv", x[64:67].numpy(), delimiter=",")  # the first rows predict saw
    predicted = user_cli("predict", "--artifact", str(run / "export"), "--input", "rows.csv")
    assert predicted.returncode == 0, predicted.output
    from_artifact = csv_rows(project / "rows.predictions.csv")
    for a, b in zip(from_artifact, from_checkpoint[:3], strict=True):
        assert a.keys() == b.keys()
        assert np.allclose([float(v) for v in a.values()], [float(v) for v in b.values()], atol=1e-5)

    answer = predict_once(run / "export", project, x[64:66].tolist())
    assert answer.status_code == 200, answer.text
    served = answer.json()
    expected = [[int(row[f"prediction_{n}"]) for n in names] for row in from_checkpoint[:2]]
    assert served["predictions"] == expected
    assert served["labels"] == [[n for n, on in zip(names, row, strict=True) if on] for row in expected]


def test_an_image_model_exports_from_data_its_datamodule_prepares_and_serves_nested_images(project, user_cli):
    images = ["--model", "usermods.TinyCNN", "--data", "usermods.FileImageData"]
    fit = user_cli("fit", *images, *QUICK, "--run", "cnn")
    assert fit.returncode == 0, fit.output
    run = project / "runs" / "tinycnn" / "cnn"
    shutil.rmtree(project / "data")  # a fresh machine: the export prepares the data as fit did
    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--format", "onnx")
    assert exported.returncode == 0, exported.output
    cases = json.loads((run / "export" / "export.json").read_text())["formats"]["onnx"]["parity"]["cases"]
    assert any(case["case"].startswith("real batch") for case in cases), cases
    assert (project / "data" / "images.npz").is_file()

    image = np.load(project / "data" / "images.npz")["x"][:2]  # (2, 1, 8, 8), as /info shows the input
    with (project / "serve.log").open("w") as log:
        server, base = start_server(run / "export", log, cwd=project)
        try:
            nested = httpx.post(f"{base}/predict", json={"inputs": image.tolist()}, timeout=60)
            flat = httpx.post(f"{base}/predict", json={"inputs": image.reshape(2, -1).tolist()}, timeout=60)
        finally:
            stop_server(server)
    assert nested.status_code == 200, nested.text
    assert nested.json() == flat.json()

    # the model and the data record num_classes with different values: one line naming both
    conflict = user_cli("fit", *images, *QUICK, "--data.num_classes", "4", "--run", "conflict")
    assert conflict.returncode == 2, conflict.output
    assert (
        "the model and the data disagree (num_classes: 3 in TinyCNN, 4 in FileImageData)" in conflict.stderr
    )

    # example_input_array left at 12x12 while the data is 8x8: check says so (and export refuses it:
    # tests/test_export_spec.py)
    stale = ["--model", "usermods.StaleExampleCNN", "--data", "usermods.FileImageData"]
    checked = user_cli("check", *stale, "--only", "forward")
    assert checked.returncode == 1 and "a stale example_input_array" in checked.output, checked.output


def test_a_segmenter_predicts_exports_and_serves_the_class_of_each_pixel(project, user_cli):
    """Per-pixel logits (B, 3, 8, 8) of a module whose IoU metric counts 3 classes: the checkpoint (its
    predict_step argmaxes), the export and the server all answer the (8, 8) class map; they answered 192 raw
    logits ("custom") while predict_step wrote 64 classes."""
    seg = ["--model", "usermods.SegNet", "--data", "usermods.SegData"]
    assert user_cli("fit", *seg, *QUICK, "--run", "s").returncode == 0
    run = project / "runs" / "segnet" / "s"
    assert user_cli("predict", "--run", "s").returncode == 0
    from_checkpoint = csv_rows(run / "predictions.csv")
    assert list(from_checkpoint[0]) == ["row", *(f"prediction_{i}" for i in range(64))]
    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--format", "onnx")
    assert exported.returncode == 0, exported.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["output_head"] == "segmentation" and record["source"]["notes"] == [], record
    assert any(case["case"].startswith("real batch") for case in record["formats"]["onnx"]["parity"]["cases"])

    import usermods

    data = usermods.SegData()
    data.setup()
    images = np.stack([sample["image"].numpy() for sample in data.val_set])  # the predict loader's samples
    np.save(project / "images.npy", images)
    predicted = user_cli("predict", "--artifact", str(run / "export"), "--input", "images.npy")
    assert predicted.returncode == 0, predicted.output
    assert csv_rows(project / "images.npy.predictions.csv") == from_checkpoint
    answer = predict_once(run / "export", project, images[:2].tolist())
    assert answer.status_code == 200, answer.text
    maps = answer.json()["predictions"]
    assert np.array(maps).shape == (2, 8, 8) and "probabilities" not in answer.json()
    assert np.array(maps).reshape(2, -1).tolist() == [
        [int(row[f"prediction_{i}"]) for i in range(64)] for row in from_checkpoint[:2]
    ]


def test_an_export_says_when_predict_step_post_processes_what_the_artifact_answers(project, user_cli):
    """A ``predict_step`` that returns the top two classes writes them from the checkpoint, while the export
    (forward only) answers one class and probabilities: the export says so (it passed without a word). One
    that returns the argmax or class probabilities answers what the export's classifier head answers too,
    and gets no note."""
    (project / "post.py").write_text(
        "import torch\n"
        "from usermods import LitModel\n\n\n"
        "class TopTwoPredict(LitModel):\n"
        "    def predict_step(self, batch, batch_idx):\n"
        "        return self(batch[0]).topk(2, dim=1).indices\n\n\n"
        "class ArgmaxPredict(LitModel):\n"
        "    def predict_step(self, batch, batch_idx):\n"
        "        return self(batch[0]).argmax(dim=1)\n\n\n"
        "class SoftmaxPredict(LitModel):\n"
        "    def predict_step(self, batch, batch_idx):\n"
        "        return torch.softmax(self(batch[0]), dim=1)\n"
    )
    for name, noted in (("TopTwoPredict", True), ("ArgmaxPredict", False), ("SoftmaxPredict", False)):
        fit = user_cli(
            "fit", "--model", f"post.{name}", "--data", "usermods.MyDataModule", *QUICK, "--run", "p"
        )
        assert fit.returncode == 0, fit.output
        run = project / "runs" / name.lower() / "p"
        exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--format", "onnx")
        assert exported.returncode == 0, exported.output
        said = f"{name}.predict_step returns (2,) int64 per sample, not forward's output: an export holds forward"
        assert (said in exported.stderr) is noted, exported.stderr
        notes = json.loads((run / "export" / "export.json").read_text())["source"]["notes"]
        assert any("predict_step returns" in note for note in notes) is noted, notes


def test_a_predict_step_dict_that_is_not_forwards_output_is_noted_at_export(project, user_cli):
    """A recommender's predict_step returns {"user_id", "top10"} while forward scores pairs: export.json
    said nothing, though serve then answers scores. forward's own dict of heads gets no note."""
    for model, data, noted in (
        ("DictPredictModel", "MyDataModule", True),
        ("MultiTask", "MyDataModule", False),
    ):
        fit = user_cli(
            "fit", "--model", f"usermods.{model}", "--data", f"usermods.{data}", *QUICK, "--run", "d"
        )
        assert fit.returncode == 0, fit.output
        exported = user_cli("export", "--run", f"{model.lower()}/d", "--format", "onnx")
        assert exported.returncode == 0, exported.output
        said = f"{model}.predict_step returns a dict of scores, top, not forward's output"
        assert (said in exported.stderr) is noted, exported.stderr
        assert ("predict_step returns" in exported.stderr) is noted, exported.stderr


def test_a_dict_batch_whose_keys_are_not_forwards_parameters_is_named_at_export(project, user_cli):
    """Batches {"features", "target"} and forward(feats, weights): export refused with a generic "set
    example_input_array", though check named the cause."""
    (project / "keys.py").write_text(
        "from usermods import DictBatchModel\n\n\n"
        "class OtherNames(DictBatchModel):\n"
        "    def forward(self, feats, weights):\n"
        "        return self.head(self.encoder(feats * weights))\n\n"
        "    def _loss(self, batch):\n"
        "        import torch.nn.functional as F\n"
        "        return F.cross_entropy(self(batch['features'], 1.0), batch['target'])\n\n"
        "    def predict_step(self, batch, batch_idx):\n"
        "        return self(batch['features'], 1.0)\n"
    )
    fit = user_cli("fit", "--model", "keys.OtherNames", "--data", "usermods.DictData", *QUICK, "--run", "k")
    assert fit.returncode == 0, fit.output
    exported = user_cli("export", "--run", "k", "--format", "onnx")
    assert exported.returncode == 2, exported.output
    assert (
        "DictData's batches are dicts of features, target, and OtherNames.forward takes feats"
        in exported.stderr
    )
    assert "name forward's parameters after the batch's keys" in exported.stderr
