"""The reference models' configs run end to end through the real ``litforge`` console script."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from cli_helpers import CONFIGS

FAST = [
    "--trainer.fast_dev_run",
    "true",
    "--trainer.accelerator",
    "cpu",
    "--trainer.enable_model_summary",
    "false",
]


@pytest.mark.parametrize("name", ["gan", "autoencoder", "transformer"])
def test_config_fast_dev_run(cli, name: str) -> None:
    result = cli("fit", "--config", str(CONFIGS / f"{name}.yaml"), *FAST)
    assert result.returncode == 0, result.output


def _rows(metrics_csv: Path) -> list[dict[str, str]]:
    with metrics_csv.open() as handle:
        return list(csv.DictReader(handle))


def test_gan_fit_writes_samples_and_checkpoints(cli, tmp_path: Path, tiny_trainer_args: list[str]) -> None:
    result = cli(
        "fit", "--config", str(CONFIGS / "gan.yaml"), *tiny_trainer_args,
        "--trainer.check_val_every_n_epoch", "1", "--run", "r",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    run = tmp_path / "runs" / "gan" / "r"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_000.png", "epoch_001.png"]
    assert (run / "samples" / "epoch_001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    rows = _rows(run / "metrics.csv")
    assert any(r.get("g_loss_step") for r in rows) and any(r.get("d_loss_step") for r in rows)
    assert any(r.get("val_mmd") for r in rows)


def test_autoencoder_fit_logs_both_learning_rates(cli, tmp_path: Path, tiny_trainer_args: list[str]) -> None:
    result = cli(
        "fit", "--config", str(CONFIGS / "autoencoder.yaml"), *tiny_trainer_args,
        "--trainer.log_every_n_steps", "1", "--model.step_size", "1", "--model.cosine_t_max", "20", "--run", "r",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    run = tmp_path / "runs" / "autoencoder" / "r"
    rows = _rows(run / "metrics.csv")
    encoder = [float(r["lr-encoder"]) for r in rows if r.get("lr-encoder")]
    decoder = [float(r["lr-decoder"]) for r in rows if r.get("lr-decoder")]
    assert encoder == pytest.approx(
        [1e-3, 1e-4]
    )  # logged at each epoch start; StepLR(step_size=1, gamma=0.1)
    assert len(decoder) == 10 and decoder == sorted(decoder, reverse=True)  # per batch, cosine decay
    assert len(list((run / "reconstructions").glob("epoch_*.png"))) == 2
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert [s["last_epoch"] for s in last["lr_schedulers"]] == [2, 10]  # 2 epochs, 10 batches
