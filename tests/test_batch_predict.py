"""``litforge predict --artifact DIR --input FILE``: predictions from an export folder, no training code."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from litforge.export.loading import load_checkpoint


@pytest.fixture(scope="module")
def export_dir(trained_digits_run: Path) -> Path:
    from cli_helpers import run_cli

    out = trained_digits_run / "export-onnx"
    ckpt = trained_digits_run / "checkpoints" / "best.ckpt"
    result = run_cli(
        "export", "--ckpt", str(ckpt), "--format", "onnx,pt2", "--out", str(out), cwd=trained_digits_run
    )
    assert result.returncode == 0, result.output
    return out


def _eager_predictions(run: Path, rows: np.ndarray) -> np.ndarray:
    module = load_checkpoint(run / "checkpoints" / "best.ckpt").module
    with torch.inference_mode():
        return module(torch.from_numpy(rows.astype(np.float32))).argmax(-1).numpy()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_csv_with_header_and_npy_give_eager_predictions(
    cli, tmp_path: Path, export_dir: Path, trained_digits_run: Path
) -> None:
    from sklearn.datasets import load_digits

    rows = load_digits().data[:50]
    np.savetxt(
        tmp_path / "rows.csv", rows, delimiter=",", header=",".join(f"px{i}" for i in range(64)), comments=""
    )
    np.save(tmp_path / "rows.npy", rows.astype(np.float32))
    expected = _eager_predictions(trained_digits_run, rows)

    result = cli("predict", "--artifact", str(export_dir), "--input", "rows.csv")
    assert result.returncode == 0, result.output
    table = _read(tmp_path / "rows.predictions.csv")
    assert [int(r["prediction"]) for r in table] == expected.tolist()
    assert list(table[0]) == ["row", "prediction", "label", *[f"prob_{i}" for i in range(10)]]  # as predict
    assert abs(sum(float(table[0][f"prob_{i}"]) for i in range(10)) - 1) < 1e-4

    result = cli(
        "predict",
        "--artifact",
        str(export_dir),
        "--input",
        "rows.npy",
        "--output",
        "out.csv",
        "--format",
        "pt2",
    )
    assert result.returncode == 0, result.output
    assert [int(r["prediction"]) for r in _read(tmp_path / "out.csv")] == expected.tolist()


@pytest.mark.parametrize(
    ("text", "message"),
    [("1,2,3\n", "have 3 values; the model takes 64"), ("a,b\n1,x\n", "non-numeric value")],
)
def test_bad_input_file_exits_2(cli, tmp_path: Path, export_dir: Path, text: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    result = cli("predict", "--artifact", str(export_dir), "--input", "bad.csv")
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "bad.predictions.csv").exists()


def test_not_an_export_folder_exits_2(cli, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("1,2\n")
    result = cli("predict", "--artifact", str(tmp_path), "--input", "rows.csv")
    assert result.returncode == 2
    assert "is not an export folder" in result.stderr
