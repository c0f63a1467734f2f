"""``litforge predict --artifact DIR --input FILE``: predictions from an export folder, no training code."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from litforge.errors import UsageError
from litforge.export import metadata
from litforge.export.batch_predict import read_texts
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
    features = json.loads((export_dir / "export.json").read_text())["inputs"][0].get("features")
    by_position = (
        "line 1 is read as a header; the export names no features, so columns are taken in their order"
    )
    assert (by_position in result.stderr) == (features is None), result.stderr  # names it cannot check: said
    table = _read(tmp_path / "rows.predictions.csv")
    assert [int(r["prediction"]) for r in table] == expected.tolist()
    assert list(table[0]) == ["row", "prediction", "label", *[f"prob_{i}" for i in range(10)]]  # as predict
    assert abs(sum(float(table[0][f"prob_{i}"]) for i in range(10)) - 1) < 1e-4
    # Excel's "CSV UTF-8": a byte-order mark and no header; every line is a row (the first was dropped)
    (tmp_path / "bom.csv").write_text("\n".join(",".join(map(str, r)) for r in rows), encoding="utf-8-sig")
    assert cli("predict", "--artifact", str(export_dir), "--input", "bom.csv").returncode == 0
    assert [int(r["prediction"]) for r in _read(tmp_path / "bom.predictions.csv")] == expected.tolist()

    # rows.npy keeps its suffix in the default name: rows.predictions.csv (from rows.csv) stays as it was
    result = cli("predict", "--artifact", str(export_dir), "--input", "rows.npy", "--format", "pt2")
    assert result.returncode == 0, result.output
    assert [int(r["prediction"]) for r in _read(tmp_path / "rows.npy.predictions.csv")] == expected.tolist()
    assert _read(tmp_path / "rows.predictions.csv") == table

    # --output -: the CSV alone on standard output (for a pipe), the summary on standard error; no file "-"
    result = cli("predict", "--artifact", str(export_dir), "--input", "rows.npy", "--output", "-")
    assert result.returncode == 0, result.output
    assert [int(r["prediction"]) for r in csv.DictReader(result.stdout.splitlines())] == expected.tolist()
    assert "50 rows predicted with onnx: standard output" in result.stderr and not (tmp_path / "-").exists()


ROW = ",".join(["1"] * 64)
BAD_INPUTS = {
    "short row": ("bad.csv", "1,2,3\n", "line 1 of bad.csv has 3 values; the model takes 64"),
    "non-numeric": ("bad.csv", "a,b\n1,x\n", "line 2 of bad.csv has a non-numeric value 'x'"),
    "ragged row": ("bad.csv", f"{ROW}\n\n1,2\n", "line 3 of bad.csv has 2 values; the model takes 64"),
    "infinity": ("bad.csv", f"{ROW}\n{ROW[:-1]}inf\n", "line 2 of bad.csv has NaN or infinite values"),
    "3-D array": (
        "bad.npy",
        np.zeros((2, 8, 4)),
        "bad.npy holds an array of shape (2, 8, 4); the model takes (N, 64)",
    ),
    "NaN in .npy": (
        "bad.npy",
        np.vstack([np.ones((1, 64)), np.full((1, 64), np.nan)]),
        "row 1 of bad.npy has NaN",
    ),
    "a JSON file": ("rows.json", "[[1, 2]]", "rows.json is not a CSV, .npy or .npz file"),
    # a first line with a number in it is data, not a header: its bad cell is refused, never dropped
    "NA in the first row": (
        "bad.csv",
        f"NA{ROW[1:]}\n{ROW}\n",
        "line 1 of bad.csv has a non-numeric value 'NA'",
    ),
    "values separated by spaces": (
        "bad.csv",
        " ".join(["1"] * 64) + "\n",
        "bad.csv has no data rows (its first line, '1 1 1",
    ),
    "values separated by semicolons": (  # a locale's CSV: line 1 reads as a header, line 2 is named
        "bad.csv",
        (";".join(["1"] * 64) + "\n") * 2,
        "(its values are separated by semicolons; litforge reads comma-separated values)",
    ),
    "one line of values separated by tabs": (
        "bad.csv",
        "\t".join(["1"] * 64) + "\n",
        "bad.csv has no data rows (its values are separated by tabs; litforge reads comma-separated values)",
    ),
    "complex .npy": (
        "bad.npy",
        np.ones((2, 64), dtype=np.complex128),
        "bad.npy holds complex128, not real numbers",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_file_exits_2_with_one_line(cli, tmp_path: Path, export_dir: Path, case: str) -> None:
    name, content, message = BAD_INPUTS[case]
    if isinstance(content, str):
        (tmp_path / name).write_text(content)
    else:
        np.save(tmp_path / name, content)
    result = cli("predict", "--artifact", str(export_dir), "--input", name)
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_output_over_the_input_is_refused(cli, tmp_path: Path, export_dir: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{ROW}\n")
    result = cli("predict", "--artifact", str(export_dir), "--input", "rows.csv", "--output", "./rows.csv")
    assert result.returncode == 2, result.output
    assert "--output: rows.csv is the --input file; refusing to overwrite it" in result.stderr
    assert rows.read_text() == f"{ROW}\n"
    export_json = export_dir / "export.json"
    before = export_json.read_bytes()
    over = cli("predict", "--artifact", str(export_dir), "--input", "rows.csv", "--output", str(export_json))
    assert over.returncode == 2 and "is a file of the export folder" in over.stderr, over.output
    assert export_json.read_bytes() == before  # the export folder stays usable


def test_not_an_export_folder_exits_2_and_says_what_to_pass(cli, tmp_path: Path, export_dir: Path) -> None:
    (tmp_path / "rows.csv").write_text("1,2\n")
    result = cli("predict", "--artifact", str(tmp_path), "--input", "rows.csv")
    assert result.returncode == 2
    assert "is not an export folder" in result.stderr
    run = export_dir.parent  # a run folder: checkpoints/, and an export of its own elsewhere
    in_run = cli("predict", "--artifact", str(run), "--input", "rows.csv")
    assert in_run.returncode == 2, in_run.output
    assert (
        f"it is a run folder: create its export with 'litforge export --ckpt {run}/checkpoints/best.ckpt'"
        in in_run.stderr
    )
    shutil.copytree(export_dir, run / "export")
    beside = cli("serve", str(run))
    assert beside.returncode == 2 and f"did you mean {run}/export?" in beside.stderr, beside.output
    shutil.rmtree(run / "export")
    checkpoint = run / "checkpoints" / "best.ckpt"  # given where its export goes: it was "no such folder"
    served = cli("serve", str(checkpoint))
    assert served.returncode == 2, served.output
    assert f"a checkpoint is exported first: 'litforge export --ckpt {checkpoint}'" in served.stderr


def test_an_export_whose_checkpoint_changed_since_says_so(cli, tmp_path: Path, export_dir: Path) -> None:
    """A resumed run rewrote best.ckpt after the export: predict still runs the export, and says which
    checkpoint changed and how to export it again; an unchanged source says nothing."""
    import json

    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(b"the weights at export time")
    exported = tmp_path / "export"
    shutil.copytree(export_dir, exported)
    record = json.loads((exported / "export.json").read_text())
    record["source"].update(checkpoint=str(checkpoint), checkpoint_sha256=metadata.sha256(checkpoint))
    (exported / "export.json").write_text(json.dumps(record))
    np.save(tmp_path / "rows.npy", np.zeros((2, 64)))

    unchanged = cli("predict", "--artifact", "export", "--input", "rows.npy")
    assert unchanged.returncode == 0 and "note" not in unchanged.stderr, unchanged.output
    checkpoint.write_bytes(b"the weights a resume saved later")
    changed = cli("predict", "--artifact", "export", "--input", "rows.npy")
    assert changed.returncode == 0, changed.output
    assert f"note: {checkpoint} changed after export was exported from it" in changed.stderr
    assert f"litforge export --ckpt {checkpoint}" in changed.stderr


def test_texts_end_blank_lines_are_dropped_and_inner_blank_ones_refused(tmp_path: Path) -> None:
    ending = tmp_path / "ending.txt"
    ending.write_text("good soup\nbad soup\n\n  \n")
    assert read_texts(ending) == ["good soup", "bad soup"]  # an editor's trailing blank lines
    inner = tmp_path / "inner.txt"
    inner.write_text("good soup\n\nbad soup\n \nfine soup\n")
    with pytest.raises(UsageError, match=r"inner.txt: lines 2, 4 are blank; each line is one text"):
        read_texts(inner)
    table = tmp_path / "texts.csv"
    table.write_text('id,text\n1,good soup\n2,""\n3,bad soup\n')
    with pytest.raises(UsageError, match=r"texts.csv: row 3 is blank"):  # row 3 of the file, its header is 1
        read_texts(table)


def test_input_without_artifact_says_it_goes_with_an_export_folder(cli) -> None:
    result = cli("predict", "--ckpt_path", "best.ckpt", "--input", "rows.npy")
    assert result.returncode == 2, result.output
    assert result.stderr.startswith(
        "litforge: error: --input goes with --artifact EXPORT_DIR (predict on a file"
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_bool_array_is_taken_for_a_bool_input_and_refused_for_a_float_one() -> None:
    """A padding mask saved with np.savez from the collate's bool tensor was refused ("holds bool, not real
    numbers") for the very dtype export.json records."""
    from litforge.export.batch_predict import _load_rows
    from litforge.export.row_shape import FeatureInput

    mask = np.array([[True, False, True], [False, False, True]])
    rows = _load_rows("m.npz (mask)", FeatureInput("mask", (3,), "bool"), mask)
    assert rows.tolist() == [[1, 0, 1], [0, 0, 1]]
    with pytest.raises(UsageError, match=r"holds bool, not real numbers"):
        _load_rows("x.npz (x)", FeatureInput("x", (3,), "float32"), mask)
