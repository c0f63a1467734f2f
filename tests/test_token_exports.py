"""Exports whose input is token ids (an ``nn.Embedding`` looks them up): export.json records the ids the model
takes, and ``predict --artifact`` (exit 2) and ``serve`` (422) refuse other values before the runtime sees
them; an export whose rows have two dynamic axes is refused when it is opened, not at the first request."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from litforge.export.input_values import first_bad_id
from litforge.models import SequenceTransformer
from litforge.serve.codecs import RequestError, RequestLimits, validate
from serve_helpers import start_server, stop_server

VOCAB = 16


@pytest.fixture(scope="module")
def token_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cli_helpers import run_cli

    folder = tmp_path_factory.mktemp("tokens")
    torch.manual_seed(0)
    model = SequenceTransformer(num_classes=VOCAB, max_len=8, d_model=16, n_heads=2, n_layers=1)
    ckpt = folder / "tokens.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    result = run_cli(
        "export", "--ckpt", str(ckpt), "--model-class", "litforge.models.SequenceTransformer",
        "--format", "onnx", "--out", "export", cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.output
    # its example_input_array fixes the length: the export says so (docs/export.md has the dynamic form)
    assert "SequenceTransformer is exported for integer rows of shape (8,) only" in result.stderr
    return folder / "export"


def test_export_records_the_ids_the_embedding_takes(token_export: Path) -> None:
    inputs = json.loads((token_export / "export.json").read_text())["inputs"]
    assert inputs == [{"name": "input", "dtype": "int64", "shape": ["batch", 8], "range": [0, VOCAB - 1]}]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("16", "line 2 of ids.csv: 16 is out of range (the model takes ids 0..15)"),
        ("-1", "line 2 of ids.csv: -1 is out of range (the model takes ids 0..15)"),
        ("3.7", "line 2 of ids.csv: 3.7 is not a whole number (the model takes ids 0..15)"),
    ],
)
def test_predict_artifact_refuses_ids_the_model_does_not_take(cli, tmp_path, token_export, value, message):
    good = ",".join(["1"] * 8)
    (tmp_path / "ids.csv").write_text(f"{good}\n{good[:-1]}{value}\n")
    result = cli("predict", "--artifact", str(token_export), "--input", "ids.csv")
    assert result.returncode == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "ids.predictions.csv").exists()
    (tmp_path / "ids.csv").write_text(f"{good}\n{good}\n")
    assert cli("predict", "--artifact", str(token_export), "--input", "ids.csv").returncode == 0


def test_texts_given_to_a_token_id_export_are_named_as_texts(cli, tmp_path, token_export) -> None:
    """A .txt of reviews for an export of token ids said "line 2 has a non-numeric value" (line 1 was taken
    for a header)."""
    (tmp_path / "texts.txt").write_text("what a lovely meal\nwhat a terrible meal\n")
    result = cli("predict", "--artifact", str(token_export), "--input", "texts.txt")
    assert result.returncode == 2, result.output
    assert (
        "line 1 of texts.txt is text ('what a lovely meal'), but this export takes token ids, not texts"
        in result.stderr
    ), result.stderr  # its first line, not taken for a header


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (16, "inputs[0]: 16 is out of range (the model takes ids 0..15)"),
        (-1, "inputs[0]: -1 is out of range"),
        (3.7, "inputs[0]: 3.7 is not a whole number"),
        (10**30, "is out of range"),
    ],
)
def test_a_request_with_ids_outside_the_vocabulary_is_a_422(value, message) -> None:
    limits = RequestLimits(row_shape=(8,), integer_bounds=(0, VOCAB - 1))
    with pytest.raises(RequestError) as refused:
        validate({"inputs": [[1] * 7 + [value]]}, limits)
    assert refused.value.status == 422 and message in refused.value.message
    validate({"inputs": [[1.0] * 8]}, limits)  # a whole float is an id


def test_ids_from_a_npy_file_are_checked_in_its_own_dtype(cli, tmp_path, token_export) -> None:
    np.save(tmp_path / "ok.npy", np.full((2, 8), 15, dtype=np.int64))
    assert cli("predict", "--artifact", str(token_export), "--input", "ok.npy").returncode == 0
    beyond_int64 = np.ones((2, 8), dtype=np.uint64)
    beyond_int64[1, 3] = 2**64 - 1
    np.save(tmp_path / "big.npy", beyond_int64)
    result = cli("predict", "--artifact", str(token_export), "--input", "big.npy")
    assert (
        result.returncode == 2 and "row 1 of big.npy: 18446744073709551615 is out of range" in result.stderr
    )
    assert first_bad_id(np.array([[0.0, 15.0], [2.0, 2.5]]), (0, VOCAB - 1)) == (
        1,
        "2.5 is not a whole number (the model takes ids 0..15)",
    )


def test_a_served_token_model_answers_out_of_range_ids_with_422(token_export: Path, tmp_path: Path) -> None:
    process, base = start_server(token_export, (tmp_path / "server.log").open("w+"))
    try:
        bad = httpx.post(f"{base}/predict", json={"inputs": [[1] * 7 + [2**70]]}, timeout=30)
        assert bad.status_code == 422 and "out of range" in bad.text, bad.text
        good = httpx.post(f"{base}/predict", json={"inputs": [[1] * 8]}, timeout=30)
        assert good.status_code == 200, good.text
    finally:
        stop_server(process)


def test_an_export_whose_rows_have_two_dynamic_axes_is_refused_when_opened(cli, token_export: Path) -> None:
    """Rows of numbers can fill one unknown length, not two: refused in one line before serving starts."""
    record = json.loads((token_export / "export.json").read_text())
    record["inputs"][0]["shape"] = ["batch", "sequence", "width"]
    (token_export.parent / "two").mkdir()
    (token_export.parent / "two" / "model.onnx").write_bytes((token_export / "model.onnx").read_bytes())
    (token_export.parent / "two" / "export.json").write_text(json.dumps(record))
    for command in (["predict", "--artifact"], ["serve"]):
        result = cli(
            *command,
            str(token_export.parent / "two"),
            *(["--input", "x.csv"] if command[0] == "predict" else []),
        )
        assert result.returncode == 2, result.output
        assert "has rows of shape ['sequence', 'width'], with 2 dynamic axes" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "quoted"), [(True, "true"), (None, "null"), ("7", '"7"'), (float("inf"), "Infinity")]
)
def test_a_bad_request_value_is_quoted_as_the_client_wrote_it(value, quoted) -> None:
    with pytest.raises(RequestError) as refused:
        validate({"inputs": [[1.0, value]]}, RequestLimits(row_shape=(2,)))
    assert f"value {quoted}" in refused.value.message  # (a boolean adds how to send it: 1 or 0)
    with pytest.raises(RequestError, match="inf is not a finite number"):
        validate({"inputs": [[1, float("inf")]]}, RequestLimits(row_shape=(2,), integer_bounds=(0, 15)))
