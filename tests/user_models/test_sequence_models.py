"""A user's sequence models (usermods.TokenClassifier, LengthsClassifier): token ids of any length, declared
with a dynamic ``sequence`` axis in ``litforge_export_spec``. Export verifies them (a 1-D ``lengths`` input
beside the tokens included); ``predict --artifact`` reads a CSV whose lines have several lengths, or a .npz
of both inputs; ``serve`` answers requests of several lengths, batched together, and requests naming both
inputs, each as the eager model does."""

from __future__ import annotations

import csv
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import usermods
from user_helpers import QUICK, USERMODS

from cli_helpers import run_cli
from litforge.errors import UsageError
from litforge.export.artifact import Artifact
from litforge.export.batch_predict import read_rows
from litforge.export.row_shape import FeatureInput, concrete, takes
from litforge.serve.codecs import RequestError, RequestLimits, validate
from litforge.serve.inference import Counters, Decoded, infer
from serve_helpers import start_server, stop_server

ROWS = [[1, 2, 7, 4, 5], [3, 3], [7, 1, 1], [3, 3, 3, 0, 0], [5] * 12]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with both sequence models fitted and exported (every format)."""
    project = tmp_path_factory.mktemp("sequences")
    shutil.copy(USERMODS, project / "usermods.py")
    for model, extra in (("TokenClassifier", []), ("LengthsClassifier", ["--data.with_lengths", "true"])):
        fit = run_cli(
            "fit", "--model", f"usermods.{model}", "--data", "usermods.TokenData", *extra, *QUICK,
            "--run", "r", cwd=project,
        )  # fmt: skip
        assert fit.returncode == 0, fit.output[-3000:]
        exported = run_cli("export", "--ckpt", f"runs/{model.lower()}/r/checkpoints/last.ckpt", cwd=project)
        assert exported.returncode == 0, exported.output[-3000:]
        assert "is exported for integer rows" not in exported.stderr  # its spec declares the sequence axis
    return project


def _eager(project: Path, rows: list[list[int]]) -> np.ndarray:
    """The trained TokenClassifier's class probabilities, one row at a time, from the user's own code (its
    integer labels make its two outputs class scores: predictions.csv and serve answer their softmax)."""
    ckpt = project / "runs" / "tokenclassifier" / "r" / "checkpoints" / "last.ckpt"
    model = usermods.TokenClassifier.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with torch.no_grad():
        return np.concatenate([model(torch.tensor([row])).softmax(-1).numpy() for row in rows])


def _probabilities(path: Path) -> np.ndarray:
    """The prob_* columns of a predictions CSV (its prediction column is their argmax)."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    probabilities = np.array([[float(v) for k, v in row.items() if k.startswith("prob_")] for row in rows])
    assert [int(row["prediction"]) for row in rows] == probabilities.argmax(1).tolist()
    return probabilities


def test_export_records_a_dynamic_sequence_axis_and_passes_parity(trained: Path) -> None:
    for model in ("tokenclassifier", "lengthsclassifier"):
        record = json.loads((trained / "runs" / model / "r" / "export" / "export.json").read_text())
        assert record["inputs"][0]["shape"] == ["batch", "sequence"]
        for fmt in ("onnx", "pt2", "torchscript"):
            parity = record["formats"][fmt]["parity"]
            assert parity["passed"], parity
            shorter = [case for case in parity["cases"] if ", sequence " in case["case"]]
            assert shorter and "skipped" not in shorter[0], (
                shorter
            )  # a shorter sequence too, lengths within it
            # the run's own data (12 tokens long where TokenClassifier's example has 8; tokens and lengths for
            # LengthsClassifier): checked too
            assert any(case["case"].startswith("real batch") for case in parity["cases"])


def test_the_default_export_leaves_out_a_format_that_cannot_trace_the_model(project: Path, user_cli) -> None:
    """A GRU over a dynamic sequence axis: torch.export specialises the length, so pt2 cannot be made. The
    default (every format that exports) leaves it out with a note; asking for it by name still fails."""
    fit = user_cli(
        "fit", "--model", "usermods.GRUClassifier", "--data", "usermods.TokenData", *QUICK, "--run", "g"
    )
    assert fit.returncode == 0, fit.output[-3000:]
    ckpt = "runs/gruclassifier/g/checkpoints/last.ckpt"
    exported = user_cli("export", "--ckpt", ckpt)
    assert exported.returncode == 0, exported.output[-3000:]
    assert "litforge: note: left out pt2: export failed:" in exported.stderr
    formats = json.loads((project / "runs" / "gruclassifier" / "g" / "export" / "export.json").read_text())[
        "formats"
    ]
    assert formats["onnx"]["file"] and formats["torchscript"]["file"] and formats["pt2"]["file"] is None
    required = user_cli("export", "--ckpt", ckpt, "--format", "onnx,pt2", "--out", "strict")
    assert required.returncode == 1 and "pt2: export failed" in required.stderr
    assert "onnx passed: --format onnx exports those alone" in required.stderr


def test_predict_artifact_reads_lines_of_several_lengths_in_file_order(trained: Path) -> None:
    (trained / "ragged.csv").write_text("\n".join(",".join(map(str, row)) for row in ROWS) + "\n")
    export = trained / "runs" / "tokenclassifier" / "r" / "export"
    for fmt in ("onnx", "pt2", "torchscript"):
        result = run_cli(
            "predict", "--artifact", str(export), "--input", "ragged.csv", "--format", fmt, cwd=trained
        )
        assert result.returncode == 0, result.output[-3000:]
        written = _probabilities(trained / "ragged.predictions.csv")
        np.testing.assert_allclose(written, _eager(trained, ROWS), rtol=1e-4, atol=1e-5)


def test_serve_answers_requests_of_several_lengths_batched_together(trained: Path) -> None:
    export = trained / "runs" / "tokenclassifier" / "r" / "export"
    bodies = [{"inputs": [row, row]} for row in ROWS]
    with (trained / "serve.log").open("w") as log:
        server, base = start_server(export, log, "fastapi", "--batch-timeout", "0.2", cwd=trained)
        try:
            with ThreadPoolExecutor(len(bodies)) as pool:
                answers = list(
                    pool.map(lambda body: httpx.post(f"{base}/predict", json=body, timeout=60), bodies)
                )
            mixed = httpx.post(f"{base}/predict", json={"inputs": ROWS[:2]}, timeout=60)
            health = httpx.get(f"{base}/health", timeout=10)
        finally:
            stop_server(server)
    assert [a.status_code for a in answers] == [200] * len(bodies), [a.text for a in answers]
    served = np.array([a.json()["probabilities"][1] for a in answers])
    np.testing.assert_allclose(served, _eager(trained, ROWS), rtol=1e-4, atol=1e-5)
    assert mixed.status_code == 422 and "share one length" in mixed.json()["detail"], mixed.text
    assert health.status_code == 200  # a refused request leaves the server serving


def test_one_model_call_per_length_in_a_batch(trained: Path) -> None:
    artifact = Artifact.open(trained / "runs" / "tokenclassifier" / "r" / "export", "onnx")
    parts = [Decoded((np.array([row], dtype=np.int64),)) for row in (ROWS[0], ROWS[1], ROWS[3])]
    counters = Counters()
    answers = infer(artifact, parts, counters)
    expected = _eager(trained, [ROWS[0], ROWS[1], ROWS[3]])
    np.testing.assert_allclose([a["probabilities"][0] for a in answers], expected, rtol=1e-4, atol=1e-5)
    snapshot = counters.snapshot()  # lengths 5, 2, 5
    assert {key: snapshot[key] for key in ("requests", "model_calls", "rows")} == {
        "requests": 3,
        "model_calls": 2,
        "rows": 3,
    }


def test_a_model_of_tokens_and_lengths_predicts_from_a_npz_and_serves_named_inputs(trained: Path) -> None:
    """forward(tokens, lengths): predict --artifact reads one array per input from a .npz, serve takes
    {"inputs": {"tokens": rows, "lengths": rows}}; both agree with the eager model. A CSV (one table), a
    request of rows without names, and lengths the model's gather refuses are answered with one line / a
    422, and the good requests batched with a refused one still get their answers."""
    export = trained / "runs" / "lengthsclassifier" / "r" / "export"
    tokens, lengths = np.array([[1, 2, 7, 4, 5], [3, 3, 9, 9, 9]]), np.array([5, 2])
    ckpt = trained / "runs" / "lengthsclassifier" / "r" / "checkpoints" / "last.ckpt"
    model = usermods.LengthsClassifier.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(tokens), torch.from_numpy(lengths)).softmax(-1).numpy()

    # from the checkpoint: the user's predict_step(tokens, lengths), its (B, 2) class scores as probabilities
    from_checkpoint = run_cli("predict", "--ckpt_path", str(ckpt), cwd=trained)
    assert from_checkpoint.returncode == 0, from_checkpoint.output[-3000:]
    assert len((ckpt.parents[1] / "predictions.csv").read_text().splitlines()) == 1 + 32  # the 32 val rows

    np.savez(trained / "pairs.npz", tokens=tokens, lengths=lengths)
    result = run_cli("predict", "--artifact", str(export), "--input", "pairs.npz", cwd=trained)
    assert result.returncode == 0, result.output[-3000:]
    np.testing.assert_allclose(
        _probabilities(trained / "pairs.npz.predictions.csv"), expected, rtol=1e-4, atol=1e-5
    )
    (trained / "rows.csv").write_text("1,2,3\n")
    refused = run_cli("predict", "--artifact", str(export), "--input", "rows.csv", cwd=trained)
    assert refused.returncode == 2 and "takes 2 inputs (tokens, lengths)" in refused.stderr, refused.output
    assert ".npz" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    # a length beyond the tokens passes the checks but not the model's gather: one line, exit 2
    np.savez(trained / "too-long.npz", tokens=tokens, lengths=np.array([5, 9]))
    failed = run_cli("predict", "--artifact", str(export), "--input", "too-long.npz", cwd=trained)
    assert (
        failed.returncode == 2
        and "the exported model cannot run on the rows of too-long.npz" in failed.stderr
    )
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.output

    good = {"inputs": {"tokens": tokens.tolist(), "lengths": lengths.tolist()}}
    bad = {"inputs": {"tokens": tokens.tolist(), "lengths": [5, 9]}}
    for backend in ("fastapi", "litserve"):
        with (trained / f"serve-{backend}.log").open("w") as log:
            server, base = start_server(export, log, backend, "--batch-timeout", "0.2", cwd=trained)
            try:  # good and refused requests batched together: only the refused ones fail
                with ThreadPoolExecutor(8) as pool:
                    post = partial(httpx.post, f"{base}/predict", timeout=60)
                    answers = list(pool.map(lambda body, post=post: post(json=body), [good, bad] * 4))
                unnamed = httpx.post(f"{base}/predict", json={"inputs": tokens.tolist()}, timeout=60)
            finally:
                stop_server(server)
        assert [a.status_code for a in answers] == [200, 422] * 4, [a.text for a in answers]
        for answer in answers[::2]:
            np.testing.assert_allclose(answer.json()["probabilities"], expected, rtol=1e-4, atol=1e-5)
        assert "the model cannot run on these inputs" in answers[1].json()["detail"]
        assert unnamed.status_code == 422, unnamed.text
        assert '{"tokens": [...], "lengths": [...]}' in unnamed.json()["detail"]


def test_requests_for_several_inputs_are_validated_by_name() -> None:
    limits = RequestLimits(
        named_inputs=(
            FeatureInput("tokens", ("sequence",), "int64", (0, 9)),
            FeatureInput("lengths", (), "int64"),
        )
    )
    validate({"inputs": {"tokens": [[1, 2], [3, 4]], "lengths": [2, 1]}}, limits)
    for body, words in (
        ({"inputs": [[1, 2]]}, "'inputs' is not an object; the model takes 2 inputs by name"),
        ({"inputs": {"tokens": [[1, 2]]}}, "has the keys ['tokens']"),
        (
            {"inputs": {"tokens": [[1, 2]], "lengths": [2, 1]}},
            "different numbers of rows (tokens 1, lengths 2)",
        ),
        ({"inputs": {"tokens": [[1, 12]], "lengths": [2]}}, "inputs.tokens[0]: 12 is out of range"),
        ({"inputs": {"tokens": [[1, 2]], "lengths": [[1, 2]]}}, "inputs.lengths[0] has 2 values"),
    ):
        with pytest.raises(RequestError) as refused:
            validate(body, limits)
        assert words in refused.value.message


def test_inputs_that_share_a_dynamic_axis_take_one_length_along_it(tmp_path: Path) -> None:
    """forward(x, mask), both [batch, sequence, ...]: a mask one step short is refused before the runtime sees
    it (it answered with an onnxruntime broadcast error), in a request and in a .npz."""
    x, mask = FeatureInput("x", ("sequence", 3), "float32"), FeatureInput("mask", ("sequence",), "float32")
    limits = RequestLimits(named_inputs=(x, mask))
    validate({"inputs": {"x": [[1, 2, 3, 4, 5, 6]], "mask": [[1, 0]]}}, limits)  # 2 steps each
    for body, words in (
        (
            {"inputs": {"x": [[1, 2, 3, 4, 5, 6]], "mask": [[1, 0, 1]]}},
            "inputs.x has sequence 2 and mask has 3",
        ),
        ({"inputs": {"x": [[1, 2, 3]], "mask": [[True]]}}, "value true (send 1 or 0 for true or false)"),
    ):
        with pytest.raises(RequestError) as refused:
            validate(body, limits)
        assert words in refused.value.message
    np.savez(tmp_path / "pairs.npz", x=np.zeros((2, 5, 3)), mask=np.ones((2, 4)))
    with pytest.raises(UsageError, match="x has sequence 5 and mask has 4"):
        read_rows(tmp_path / "pairs.npz", (x, mask))


def test_a_bool_input_takes_0_1_true_and_false_and_nothing_else() -> None:
    """A padding mask exported as bool: 2 and 0.5 were let through (read as true), JSON true was refused."""
    from litforge.export.input_values import integer_bounds

    x = FeatureInput("x", ("sequence", 2), "float32")
    mask = FeatureInput("mask", ("sequence",), "bool", integer_bounds({"dtype": "bool"}))
    limits = RequestLimits(named_inputs=(x, mask))
    validate({"inputs": {"x": [[1, 2, 3, 4]], "mask": [[True, False]]}}, limits)
    validate({"inputs": {"x": [[1, 2, 3, 4]], "mask": [[1, 0]]}}, limits)
    for value, words in ((2, "2 is out of range"), (0.5, "0.5 is not a whole number")):
        with pytest.raises(RequestError) as refused:
            validate({"inputs": {"x": [[1, 2, 3, 4]], "mask": [[1, value]]}}, limits)
        assert f"inputs.mask[0]: {words} (the model takes 0 or 1, false or true)" in refused.value.message


def test_row_shapes_with_a_dynamic_axis() -> None:
    assert concrete(("sequence",), 5) == (5,) and concrete(("sequence",), 0) is None
    assert concrete(("sequence", 8), 24) == (3, 8) and concrete(("sequence", 8), 20) is None
    assert concrete((3, 4), 12) == (3, 4) and concrete((3, 4), 13) is None
    assert (takes(("sequence",)), takes(("sequence", 8)), takes((3, 4))) == (
        "1 or more",
        "a multiple of 8",
        "12",
    )


def test_requests_for_a_dynamic_axis_are_validated(tmp_path: Path) -> None:
    limits = RequestLimits(row_shape=("sequence", 2), integer_bounds=(0, 9))
    validate({"inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]}, limits)
    validate({"inputs": [[[1, 2], [3, 4], [5, 6]]]}, limits)  # nested as [sequence][2]
    for body, words in (
        ({"inputs": {"x": [[1, 2]]}}, "'inputs' is an object, but the model takes one input"),
        ({"inputs": [[1, 2, 3]]}, "has 3 values; the model takes a multiple of 2"),
        ({"inputs": [[1, 2], [1, 2, 3, 4]]}, "the rows of one request share one length"),
        ({"inputs": [[[1, 2, 3]]]}, "has 3 entries"),
        ({"inputs": [[]]}, "has 0 values"),
    ):
        with pytest.raises(RequestError, match=words):
            validate(body, limits)
    (tmp_path / "rows.csv").write_text("1,2\n1,2,3,4\n5,6\n")
    groups = read_rows(tmp_path / "rows.csv", (FeatureInput("x", ("sequence", 2), "int64", (0, 9)),))
    assert [(lines.tolist(), rows[0].shape) for lines, rows in groups] == [
        ([0, 2], (2, 1, 2)),
        ([1], (1, 2, 2)),
    ]
