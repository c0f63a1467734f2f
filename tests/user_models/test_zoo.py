"""The user-model zoo: modules written the way users write them, each from a file in the working folder,
driven through every subcommand: fit -> test from the run's config.yaml -> predict from a bare checkpoint
-> export -> predict --artifact -> serve one request -> check -> a 2-trial tune -> kill -9 mid-epoch and
--resume auto, bitwise equal to the uninterrupted run."""

from __future__ import annotations

import inspect
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import usermods
import yaml
from user_helpers import csv_rows

from litforge.predictions.forward_inputs import forward_inputs_from_batch
from serve_helpers import start_server, stop_server

pytestmark = pytest.mark.slow

# 2 epochs of 4 batches, a checkpoint every 2 steps (so some fall in the middle of an epoch).
ZOO_FIT = [
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "4",
    "--trainer.limit_val_batches", "2",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
    "--checkpoint_every_n_steps", "2",
]  # fmt: skip
KILL_AT_STEP = 7  # in the second epoch, one step after the mid-epoch checkpoint of step 6


@dataclass(frozen=True)
class Entry:
    model: str
    data: str
    metric: str = "val_loss"  # what tune optimizes
    maximize: bool = False
    texts: bool = False  # served from raw text (its export carries a tokenizer)
    pretrained: bool = False  # takes --model.model_name / --data.model_name (a tiny local BERT here)
    # the output head export infers: 3 scores, no declared classes, and integer labels in the batches
    head: str = "classification"

    @property
    def experiment(self) -> str:
        return self.model.lower()


ZOO = [
    Entry("LitModel", "MyDataModule"),  # the seed's classifier, plain shuffled DataLoader
    Entry("Regressor", "RegressionData", head="regression"),  # one float per sample
    Entry("DictBatchModel", "DictData"),  # {"features": ..., "target": ...} batches
    Entry("ManualOptModel", "MyDataModule"),  # two optimizers, a scheduler stepped by hand
    Entry("CompiledModel", "MyDataModule"),  # torch.compile in configure_model
    Entry("NoValidationModel", "MyDataModule", metric="train_loss"),
    Entry("OtherMetricsModel", "MyDataModule", metric="valid/accuracy", maximize=True),  # no val_loss
    Entry(
        "LitTransformer", "ReviewsData", texts=True, pretrained=True, head="classification"
    ),  # Hugging Face, lr 2e-5
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the bundled MiniLM's tokenizer, saved as a pretrained folder: the user's
    ``from_pretrained`` code path at a size whose checks (overfit: ~150 steps) take seconds, not minutes."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(usermods._minilm())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _class_defaults(cls: type) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _predict_inputs(entry: Entry) -> np.ndarray:
    """The rows the user's predict_dataloader yields, as forward takes them (features models)."""
    data = getattr(usermods, entry.data)()
    data.setup("predict")
    model = getattr(usermods, entry.model)()
    rows = [forward_inputs_from_batch(model, batch) for batch in data.predict_dataloader()]
    tensors = [args[0] if args else next(iter(kwargs.values())) for args, kwargs in rows]
    return torch.cat(tensors).numpy()


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.model)
def test_a_users_module_through_every_subcommand(entry: Entry, project: Path, user_cli, request) -> None:
    classes = ["--model", f"usermods.{entry.model}", "--data", f"usermods.{entry.data}"]
    given = {}
    if entry.pretrained:
        # a small model trained from scratch needs more than the fine-tuning default lr=2e-5
        given = {"model_name": str(request.getfixturevalue("tiny_bert")), "lr": 1e-3}
        classes += ["--model.model_name", given["model_name"], "--data.model_name", given["model_name"]]
        classes += ["--model.lr", str(given["lr"])]
    run = project / "runs" / entry.experiment / "ref"
    last = run / "checkpoints" / "last.ckpt"
    env = {"HF_HUB_OFFLINE": "1"}

    # fit: the class's own defaults hold
    fit = user_cli("fit", *classes, *ZOO_FIT, "--run", "ref", env=env)
    assert fit.returncode == 0, fit.output[-3000:]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["init_args"] == {**_class_defaults(getattr(usermods, entry.model)), **given}

    # test with the run's own config, predict from the bare checkpoint (the run's data comes along)
    tested = user_cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last), env=env)
    assert tested.returncode == 0 and "test_loss" in tested.stdout, tested.output[-3000:]
    if getattr(usermods, entry.model).validation_step is None:  # validate has nothing to run: one line
        refused = user_cli("validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(last))
        assert refused.returncode == 2 and "defines no validation_step()" in refused.stderr, refused.output
        assert "Traceback" not in refused.output
    predicted = user_cli("predict", "--ckpt_path", str(last), env=env)
    assert predicted.returncode == 0, predicted.output[-3000:]
    from_checkpoint = csv_rows(run / "predictions.csv")
    assert from_checkpoint

    # export (ONNX, verified against eager), then the artifact predicts the same rows the same way
    exported = user_cli("export", "--ckpt", str(last), "--format", "onnx", env=env)
    assert exported.returncode == 0, exported.output[-3000:]
    export = run / "export"
    assert json.loads((export / "export.json").read_text())["output_head"] == entry.head
    if not entry.texts:
        np.savetxt(project / "rows.csv", _predict_inputs(entry), delimiter=",")
        artifact = user_cli("predict", "--artifact", str(export), "--input", "rows.csv", env=env)
        assert artifact.returncode == 0, artifact.output[-3000:]
        from_artifact = csv_rows(project / "rows.predictions.csv")
        assert from_artifact[0].keys() == from_checkpoint[0].keys()
        numeric = [key for key in from_artifact[0] if key not in ("row", "label")]
        for a, b in zip(from_artifact, from_checkpoint, strict=True):
            assert np.allclose([float(a[k]) for k in numeric], [float(b[k]) for k in numeric], atol=1e-4)

    # serve: one request, answered 200 with the artifact's values
    with (project / "serve.log").open("w") as log:
        server, base = start_server(export, log, "fastapi", cwd=project)
        try:
            body = (
                {"texts": ["what a great film"]}
                if entry.texts
                else {"inputs": _predict_inputs(entry)[:2].tolist()}
            )
            answer = httpx.post(f"{base}/predict", json=body, timeout=60)
        finally:
            stop_server(server)
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert len(served["predictions"]) == len(next(iter(body.values())))
    if not entry.texts:  # the same values as the checkpoint and the artifact
        values = np.array(served["predictions"], dtype=np.float64).reshape(2, -1)
        if "probabilities" in served:
            values = np.hstack([values, np.array(served["probabilities"])])
        expected = [[float(row[k]) for k in numeric if k != "row"] for row in from_checkpoint[:2]]
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)

    # check: every standard check passes on the user's module, from the run's config; but the Hugging Face
    # model fine-tunes in the eval mode from_pretrained leaves it in (Lightning 2.6 keeps each module's
    # mode), its dropout off, as Lightning's own docs example does: check names that
    checked = user_cli("check", "--config", str(run / "config.yaml"), "--skip", "export", env=env)
    if entry.pretrained:
        assert checked.returncode == 1, checked.output[-3000:]
        assert "1 of 10 checks failed: training_step" in checked.stderr
        assert "self.model (" in checked.stdout.replace("│", "")
    else:
        assert checked.returncode == 0, checked.output[-3000:]

    # tune: two trials on the same config; best.yaml keeps the class and every other default
    space = {
        "metric": entry.metric,
        "direction": "maximize" if entry.maximize else "minimize",
        "params": {"model.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}},
    }
    (project / "space.yaml").write_text(yaml.safe_dump(space))
    tuned = user_cli(
        "tune", "--config", str(run / "config.yaml"), "--space", "space.yaml", "--n-trials", "2",
        "--out", "tuned", "--no-plots", "--trainer.max_epochs", "1", env=env,
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.output[-3000:]
    best = yaml.safe_load((project / "tuned" / "best.yaml").read_text())["model"]
    assert best["class_path"] == f"usermods.{entry.model}"
    assert {k: v for k, v in best["init_args"].items() if k != "lr"} == {
        k: v for k, v in saved["model"]["init_args"].items() if k != "lr"
    }

    # kill -9 in the middle of an epoch, then the same command with --resume auto: bit for bit the same
    killed = [*classes, *ZOO_FIT, "--run", "k", "--resume", "auto",
              "--trainer.callbacks+=usermods.KillOnce", f"--trainer.callbacks.step={KILL_AT_STEP}"]  # fmt: skip
    first = user_cli("fit", *killed, env=env)
    assert first.returncode == -signal.SIGKILL, first.output[-3000:]
    again = user_cli("fit", *killed, env=env)
    assert again.returncode == 0 and "resuming from" in again.stderr, again.output[-3000:]
    reference = torch.load(last, weights_only=True)
    resumed = torch.load(run.parent / "k" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == reference["global_step"]
    for key, tensor in reference["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][key]), key
    assert json.dumps(_plain(reference["optimizer_states"])) == json.dumps(
        _plain(resumed["optimizer_states"])
    )
    # each logged step once, as in the unbroken run (two optimizers step global_step twice per batch)
    assert (run.parent / "k" / "metrics.csv").read_text() == (run / "metrics.csv").read_text()


def _plain(value: object) -> object:
    """Optimizer states with tensors as lists, for an exact comparison."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
