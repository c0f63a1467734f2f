"""A multi-task model whose forward returns its heads (a dict, or a tuple): every head is exported, checked
for parity, predicted from the export and served under its name, with the values ``predict`` writes from
the checkpoint."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from user_helpers import QUICK, csv_rows

from serve_helpers import predict_once, start_server, stop_server


def _numbers(rows, columns):
    return np.array([[float(row[c]) for c in columns] for row in rows])


def test_a_dict_of_heads_is_exported_predicted_and_served_head_by_head(project, user_cli):
    import usermods

    classes = ["--model", "usermods.MultiTask", "--data", "usermods.MyDataModule"]
    assert user_cli("fit", *classes, *QUICK, "--run", "mt").returncode == 0
    run = project / "runs" / "multitask" / "mt"
    predicted = user_cli("predict", "--run", "mt")
    assert predicted.returncode == 0, predicted.output
    from_checkpoint = csv_rows(run / "predictions.csv")
    columns = ["label_0", "label_1", "label_2", "size"]
    assert list(from_checkpoint[0]) == ["row", *columns]

    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"))
    assert exported.returncode == 0, exported.output
    assert "note" not in exported.stderr, exported.stderr
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["output_head"] == "named_outputs"
    assert [(o["name"], o["shape"]) for o in record["outputs"]] == [
        ("label", ["batch", 3]),
        ("size", ["batch"]),
    ]
    assert record["source"]["model_class"] == "usermods.MultiTask"
    for fmt in ("onnx", "pt2", "torchscript"):
        parity = record["formats"][fmt]["parity"]
        assert parity["passed"] and parity["max_abs_error"] < 1e-4, (fmt, parity)

    x, _ = usermods._blobs(320, 16, 3, seed=0)
    np.savetxt(project / "rows.csv", x[272:277].numpy(), delimiter=",")  # the rows predict saw first
    for fmt in ("onnx", "pt2", "torchscript"):
        out = f"rows.{fmt}.csv"
        artifact = user_cli(
            "predict",
            "--artifact",
            str(run / "export"),
            "--input",
            "rows.csv",
            "--format",
            fmt,
            "--output",
            out,
        )
        assert artifact.returncode == 0, artifact.output
        from_artifact = csv_rows(project / out)
        assert list(from_artifact[0]) == ["row", *columns], fmt
        np.testing.assert_allclose(
            _numbers(from_artifact, columns), _numbers(from_checkpoint[:5], columns), atol=1e-4, rtol=1e-4
        )

    with (project / "serve.log").open("w") as log:
        server, base = start_server(run / "export", log, cwd=project)
        try:
            answer = httpx.post(f"{base}/predict", json={"inputs": x[272:274].tolist()}, timeout=60)
            info = httpx.get(f"{base}/info", timeout=60).json()
        finally:
            stop_server(server)
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]
    assert list(served) == ["label", "size"]
    np.testing.assert_allclose(served["label"], _numbers(from_checkpoint[:2], columns[:3]), atol=1e-4)
    np.testing.assert_allclose(served["size"], _numbers(from_checkpoint[:2], ["size"])[:, 0], atol=1e-4)
    assert [o["name"] for o in info["model"]["outputs"]] == ["label", "size"]


def test_a_tuple_of_heads_is_named_by_position_and_a_per_batch_output_is_refused(project, user_cli):
    classes = ["--model", "usermods.TupleHeads", "--data", "usermods.MyDataModule"]
    assert user_cli("fit", *classes, *QUICK, "--trainer.max_epochs", "1", "--run", "t").returncode == 0
    run = project / "runs" / "tupleheads" / "t"
    assert user_cli("predict", "--run", "t").returncode == 0
    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--format", "onnx")
    assert exported.returncode == 0, exported.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert [o["name"] for o in record["outputs"]] == ["output_0", "output_1"]
    from_checkpoint = csv_rows(run / "predictions.csv")
    assert list(from_checkpoint[0]) == ["row", "output_0_0", "output_0_1", "output_0_2", "output_1"]


@pytest.mark.parametrize(
    ("forward", "needle"),
    [
        (
            "return {'label': self.digit(self.trunk(x)), 'loss': x.sum()}",
            "MultiTask.forward()'s output 'loss' has shape () for 2 input rows, not one row per sample",
        ),
        (
            "return {'label': self.digit(self.trunk(x)), 'name': 'blob'}",
            "MultiTask.forward()'s output 'name' is a str, not a tensor",
        ),
    ],
)
def test_an_output_an_export_cannot_answer_per_row_is_refused_in_one_line(project, user_cli, forward, needle):
    assert user_cli("fit", "--model", "usermods.MultiTask", "--data", "usermods.MyDataModule", *QUICK,
                    "--trainer.max_epochs", "1", "--run", "r").returncode == 0  # fmt: skip
    source = (project / "usermods.py").read_text()
    old = 'return {"label": self.digit(features), "size": self.size(features).squeeze(-1)}'
    assert old in source
    (project / "usermods.py").write_text(source.replace(old, forward))
    ckpt = project / "runs" / "multitask" / "r" / "checkpoints" / "best.ckpt"
    refused = user_cli("export", "--ckpt", str(ckpt), "--format", "onnx")
    assert refused.returncode == 2, refused.output
    assert needle in refused.stderr and refused.stderr.count("litforge: error:") == 1, refused.stderr


def test_an_embedding_is_written_exported_and_served_as_vectors_not_as_classes(project, user_cli):
    """Unit-length rows on a labelled dataset were read as class scores (integer labels and as many values
    per sample as classes, or more): predictions.csv had prob_ columns and serve answered a class. And a
    one-row ``example_input_array`` failed the pt2 export (torch.export specialised its batch of 1)."""
    import usermods

    classes = ["--model", "usermods.Embedder", "--data", "usermods.MyDataModule"]
    assert user_cli("fit", *classes, *QUICK, "--trainer.max_epochs", "1", "--run", "e").returncode == 0
    run = project / "runs" / "embedder" / "e"
    predicted = user_cli("predict", "--run", "e")
    assert predicted.returncode == 0, predicted.output
    from_checkpoint = csv_rows(run / "predictions.csv")
    columns = [f"prediction_{i}" for i in range(8)]
    assert list(from_checkpoint[0]) == ["row", *columns]
    np.testing.assert_allclose(np.linalg.norm(_numbers(from_checkpoint, columns), axis=1), 1, atol=1e-5)

    exported = user_cli("export", "--run", "e")
    assert exported.returncode == 0 and "note" not in exported.stderr, exported.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["output_head"] == "multi_output", record["postprocessing"]
    assert all(record["formats"][fmt]["parity"]["passed"] for fmt in ("onnx", "pt2", "torchscript"))

    x, _ = usermods._blobs(320, 16, 3, seed=0)
    answer = predict_once(run / "export", project, x[272:275].tolist())
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(
        answer.json()["predictions"], _numbers(from_checkpoint[:3], columns), atol=1e-5
    )


def test_a_reconstruction_is_written_and_exported_as_values_not_as_classes(project, user_cli):
    """An autoencoder on (x, label) batches: 16 outputs and labels 0..2 made it a 16-class classifier
    (predictions.csv had prob_0 ... prob_15 and an argmax)."""
    classes = ["--model", "usermods.Reconstructor", "--data", "usermods.MyDataModule"]
    assert user_cli("fit", *classes, *QUICK, "--trainer.max_epochs", "1", "--run", "r").returncode == 0
    run = project / "runs" / "reconstructor" / "r"
    assert user_cli("predict", "--run", "r").returncode == 0
    assert list(csv_rows(run / "predictions.csv")[0]) == ["row", *(f"prediction_{i}" for i in range(16))]
    exported = user_cli("export", "--run", "r", "--format", "onnx")
    assert exported.returncode == 0, exported.output
    record = json.loads((run / "export" / "export.json").read_text())
    assert record["output_head"] == "multi_output", record["postprocessing"]
