"""A tabular model's columns by name: export.json records them, ``predict --artifact`` reads a CSV's header by
name (columns in any order, extra columns left out, a missing one refused) and ``serve`` takes records."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from cli_helpers import TINY_TRAINER, run_cli
from litforge.export import metadata
from serve_helpers import start_server, stop_server

COLUMNS = ["a", "b", "c", "d"]


def _write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> Path:
    """A CSV of four named features and a label, fitted with CSVDataModule and exported to ONNX."""
    folder = tmp_path_factory.mktemp("tabular")
    x = np.random.default_rng(0).normal(size=(200, 4)).round(4)
    labels = np.where(x[:, 0] + 2 * x[:, 2] > 0, "yes", "no")
    _write(
        folder / "data.csv",
        [*COLUMNS, "label"],
        [[*row, label] for row, label in zip(x, labels, strict=True)],
    )
    np.save(folder / "x.npy", x)
    data = ["--data", "CSVDataModule", "--data.path", "data.csv", "--data.label_column", "label"]
    assert run_cli("fit", *data, *TINY_TRAINER, "--run", "t", cwd=folder).returncode == 0
    ckpt = folder / "runs" / "classifier" / "t" / "checkpoints" / "best.ckpt"
    exported = run_cli("export", "--ckpt", str(ckpt), "--format", "onnx", cwd=folder)
    assert exported.returncode == 0, exported.output
    return folder


def _predicted(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / name).open() as handle:
        return list(csv.DictReader(handle))


def test_export_records_the_columns_and_a_csv_is_read_by_its_header(tabular: Path) -> None:
    export = tabular / "runs" / "classifier" / "t" / "export"
    assert metadata.read(export)["inputs"][0]["features"] == COLUMNS
    x = np.load(tabular / "x.npy")[:6]
    _write(tabular / "plain.csv", COLUMNS, x.tolist())
    _write(
        tabular / "shuffled.csv",
        ["id", "d", "c", "b", "a"],
        [[f"r{i}", *row[::-1]] for i, row in enumerate(x)],
    )
    plain = run_cli("predict", "--artifact", str(export), "--input", "plain.csv", cwd=tabular)
    shuffled = run_cli("predict", "--artifact", str(export), "--input", "shuffled.csv", cwd=tabular)
    assert plain.returncode == 0 and shuffled.returncode == 0, shuffled.output
    assert "note: plain.csv" not in plain.stderr
    assert (
        "read by name in the model's order (a, b, c, d); columns the model does not take are left out (id)"
        in (shuffled.stderr)
    )
    assert _predicted(tabular, "shuffled.predictions.csv") == _predicted(tabular, "plain.predictions.csv")

    _write(tabular / "short.csv", ["a", "b", "d"], x[:, [0, 1, 3]].tolist())
    missing = run_cli("predict", "--artifact", str(export), "--input", "short.csv", cwd=tabular)
    assert missing.returncode == 2, missing.output
    assert (
        "short.csv has no column 'c' (the model takes a, b, c, d; its header has a, b, d)" in missing.stderr
    )
    assert not (tabular / "short.predictions.csv").exists()


def test_serve_takes_records_by_feature_name(tabular: Path) -> None:
    export = tabular / "runs" / "classifier" / "t" / "export"
    x = np.load(tabular / "x.npy")[:2]
    records = [dict(zip(reversed(COLUMNS), reversed(row.tolist()), strict=True)) for row in x]
    with (tabular / "serve.log").open("w") as log:
        server, base = start_server(export, log, cwd=tabular)
        try:
            by_name = httpx.post(f"{base}/predict", json={"inputs": records}, timeout=60)
            by_position = httpx.post(f"{base}/predict", json={"inputs": x.tolist()}, timeout=60)
            wrong = httpx.post(
                f"{base}/predict", json={"inputs": [{"a": 1, "b": 2, "c": 3, "e": 4}]}, timeout=60
            )
        finally:
            stop_server(server)
    assert by_name.status_code == 200, by_name.text
    assert by_name.json() == by_position.json()
    assert wrong.status_code == 422
    assert "inputs[0]: missing d; unknown e (the model takes a, b, c, d)" in wrong.json()["detail"]


def test_a_datamodule_holding_scaling_statistics_is_noted_at_export() -> None:
    """A user's datamodule that standardises rows before forward: the export takes standardised rows, so
    export names what it holds; plain settings (batch_size, a path) are not statistics."""
    import numpy as np
    import torch
    from sklearn.preprocessing import StandardScaler

    from litforge.export.loading import data_side_scaling
    from litforge.export.metadata import preprocessing

    class Standardising:
        def __init__(self) -> None:
            self.batch_size, self.path, self.max_epochs_hint = 32, "rows.csv", 3
            self.mean, self.x_std = np.zeros(4), torch.ones(4)
            self.scaler = StandardScaler()

    assert data_side_scaling(Standardising()) == ["self.mean", "self.x_std", "self.scaler"]
    assert preprocessing(torch.nn.Linear(4, 1))["in_graph"] is None  # nothing litforge knows of


class CategoriesAndNumbers(torch.nn.Module):
    """``forward(cat, num)``: three categorical columns looked up in their own tables, then two numbers."""

    feature_names = ["city", "kind", "size", "age", "income"]  # cat's three columns, then num's two

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(n, 2) for n in (4, 3, 5))
        self.head = torch.nn.Linear(8, 1)
        self.example_input_array = (torch.tensor([[0, 1, 4], [3, 2, 0]]), torch.zeros(2, 2))

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        columns = [table(cat[:, i]) for i, table in enumerate(self.tables)]
        return self.head(torch.cat([*columns, num], dim=1)).squeeze(-1)


class UnnamedCategoriesAndNumbers(CategoriesAndNumbers):
    feature_names = None  # its datamodule names the columns


def test_the_datamodules_names_are_not_split_over_several_inputs_and_a_note_says_what_to_do(
    tmp_path: Path, capsys
) -> None:
    """Split by count, a datamodule's [age, income, city, kind, size] for forward(cat[3], num[2]) would route
    CSV columns and serve records by the wrong names: kept out, with a note naming the fix."""
    from litforge.export.exporter import export_module

    names = ["city", "kind", "size", "age", "income"]
    result = export_module(UnnamedCategoriesAndNumbers().eval(), tmp_path, ["onnx"], feature_names=names)
    assert result.failed == []
    assert [entry.get("features") for entry in metadata.read(tmp_path)["inputs"]] == [None, None]
    assert "the datamodule's 5 feature names are not split over forward's 2 inputs (cat, num)" in (
        capsys.readouterr().err
    )


def test_a_model_of_two_inputs_reads_one_csv_and_serves_records_per_input(tmp_path: Path) -> None:
    """A tabular model's usual file is one CSV: its columns go to the inputs in turn (cat's, then num's), by
    the header's names when export.json records them; serve takes a record per input. Both used to ask for
    a .npz of one array per input."""
    from litforge.export.exporter import export_module

    model = CategoriesAndNumbers().eval()
    export = tmp_path / "export"
    assert export_module(model, export, ["onnx"]).failed == []
    inputs = metadata.read(export)["inputs"]
    assert [entry["features"] for entry in inputs] == [["city", "kind", "size"], ["age", "income"]]
    cat, num = np.array([[0, 1, 4], [3, 2, 0]]), np.array([[0.5, -1.0], [1.5, 2.0]])
    with torch.no_grad():
        expected = model(torch.from_numpy(cat), torch.from_numpy(num).float()).numpy()

    (tmp_path / "plain.csv").write_text(
        "".join(f"{','.join(map(str, [*c, *n]))}\n" for c, n in zip(cat, num, strict=True))
    )
    _write(tmp_path / "named.csv", ["id", "income", "age", "size", "kind", "city"],
           [[f"r{i}", *n[::-1], *c[::-1]] for i, (c, n) in enumerate(zip(cat, num, strict=True))])  # fmt: skip
    for name in ("plain.csv", "named.csv"):
        result = run_cli("predict", "--artifact", str(export), "--input", name, cwd=tmp_path)
        assert result.returncode == 0, result.output
        rows = _predicted(tmp_path, name.replace(".csv", ".predictions.csv"))
        np.testing.assert_allclose([float(row["prediction"]) for row in rows], expected, rtol=1e-5)

    (tmp_path / "short.csv").write_text("0,1,4,0.5\n")
    (tmp_path / "bad-id.csv").write_text("0,1,5,0.5,1\n")
    for name, needle in [
        ("short.csv", "line 1 of short.csv has 4 values; the model takes 5 (cat 3 + num 2)"),
        ("bad-id.csv", "line 1 of bad-id.csv: 5 is out of range (the model takes ids 0..4)"),
    ]:
        refused = run_cli("predict", "--artifact", str(export), "--input", name, cwd=tmp_path)
        assert refused.returncode == 2 and needle in refused.stderr, refused.output

    with (tmp_path / "serve.log").open("w") as log:
        server, base = start_server(export, log, cwd=tmp_path)
        try:
            records = {
                "cat": [dict(zip(["city", "kind", "size"], map(int, c), strict=True)) for c in cat],
                "num": [dict(zip(["age", "income"], map(float, n), strict=True)) for n in num],
            }
            answer = httpx.post(f"{base}/predict", json={"inputs": records}, timeout=60)
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-5)
            records["num"][0] = {"age": 0.5}
            refused = httpx.post(f"{base}/predict", json={"inputs": records}, timeout=60)
            assert refused.status_code == 422 and "missing income" in refused.text, refused.text
        finally:
            stop_server(server)


class UsersAndItems(torch.nn.Module):
    """``forward(user_ids, item_ids)``: one id each per row, a score per pair (a two-tower recommender)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.users, self.items = torch.nn.Embedding(5, 4), torch.nn.Embedding(7, 4)
        self.example_input_array = (torch.tensor([0, 4]), torch.tensor([6, 1]))

    def forward(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        return (self.users(user_ids) * self.items(item_ids)).sum(-1)


def test_inputs_of_one_id_each_are_read_by_their_names_from_a_csv_header(tmp_path: Path) -> None:
    """A header naming forward's inputs in another order was read by position: users scored as items,
    exit 0. Now it picks the inputs' columns by name, leaving others out; without a header, by position."""
    from litforge.export.exporter import export_module

    model = UsersAndItems().eval()
    assert export_module(model, tmp_path / "export", ["onnx"]).failed == []
    users, items = [0, 4, 2], [6, 1, 3]
    with torch.no_grad():
        expected = model(torch.tensor(users), torch.tensor(items)).numpy()
    _write(
        tmp_path / "swapped.csv",
        ["item_ids", "ts", "user_ids"],
        [[i, 99, u] for u, i in zip(users, items, strict=True)],
    )
    (tmp_path / "plain.csv").write_text("".join(f"{u},{i}\n" for u, i in zip(users, items, strict=True)))
    notes = {}
    for name in ("swapped.csv", "plain.csv"):
        result = run_cli("predict", "--artifact", str(tmp_path / "export"), "--input", name, cwd=tmp_path)
        assert result.returncode == 0, result.output
        rows = _predicted(tmp_path, name.replace(".csv", ".predictions.csv"))
        np.testing.assert_allclose([float(row["prediction"]) for row in rows], expected, rtol=1e-5)
        notes[name] = result.stderr
    assert "columns the model does not take are left out (ts)" in notes["swapped.csv"]
    _write(tmp_path / "other.csv", ["user", "item"], [[0, 1]])
    refused = run_cli("predict", "--artifact", str(tmp_path / "export"), "--input", "other.csv", cwd=tmp_path)
    assert refused.returncode == 2 and "has no column 'user_ids', 'item_ids'" in refused.stderr, (
        refused.output
    )


def test_a_csv_of_several_inputs_with_a_header_says_how_many_values_they_take(tmp_path: Path) -> None:
    from litforge.errors import UsageError
    from litforge.export.batch_predict import read_rows
    from litforge.export.row_shape import FeatureInput

    inputs = (FeatureInput("cat", (3,), "int64", (0, 4)), FeatureInput("num", (2,), "float32"))
    (tmp_path / "rows.csv").write_text("a,b,c,d\n1,2,3,4.5\n")
    with pytest.raises(
        UsageError, match=r"line 2 of \S+rows.csv has 4 values; the model takes 5 \(cat 3 \+ num 2\)"
    ):
        read_rows(tmp_path / "rows.csv", inputs)
