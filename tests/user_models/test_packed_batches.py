"""A graph network on packed batches (PyTorch Geometric's layout by hand: node features, a (2, E) edge index,
each node's graph, one target per graph), as a dataclass or a dict: litforge reads inside it, and what cannot
split it into samples says so instead of blaming the model."""

from __future__ import annotations

import json

import pytest
import usermods
from user_helpers import QUICK

from litforge.errors import UsageError
from litforge.export.spec import export_spec
from litforge.predictions.batch_tensors import named_tensors, packed_inputs, shared_first_axis
from litforge.testing import run_checks


def _first_batch(as_dict: bool = False):
    data = usermods.GraphData(as_dict=as_dict)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def test_a_dataclass_batchs_tensors_are_found_by_field():
    batch = _first_batch()
    paths = [path for path, _ in named_tensors(batch)]
    assert paths == ["batch.x", "batch.edge_index", "batch.batch", "batch.y"]
    assert shared_first_axis(batch) is None  # nodes, 2, nodes, graphs
    assert packed_inputs(usermods.GNN(), (batch.x, batch.edge_index, batch.batch), {}).startswith("x (")


@pytest.mark.parametrize("as_dict", [False, True])
def test_check_passes_a_correct_graph_network_and_skips_what_needs_samples_split(as_dict):
    results = {r.name: r for r in run_checks(usermods.GNN(), usermods.GraphData(as_dict=as_dict))}
    failed = {name: r.detail for name, r in results.items() if r.status in ("FAIL", "ERROR")}
    assert not failed
    assert "packed inputs (x (" in results["data"].detail
    assert results["forward"].status == "PASS"
    for name in ("batch_independence", "export"):
        assert results[name].status == "SKIP"
        assert "packed inputs" in results[name].detail


def test_export_refuses_packed_inputs_from_an_example_a_spec_or_the_data_alike():
    batch = _first_batch()
    module = usermods.GNN()
    inputs = (batch.x, batch.edge_index, batch.batch)
    with pytest.raises(UsageError, match="cannot be exported: its datamodule's batches hold forward's x"):
        export_spec(module, None, inputs)
    module.example_input_array = inputs
    with pytest.raises(UsageError, match="example_input_array holds forward's x"):
        export_spec(module)
    module.litforge_export_spec = lambda: {"inputs": inputs, "input_names": ["x", "edge_index", "batch"]}
    with pytest.raises(UsageError, match="litforge_export_spec\\(\\)'s inputs x"):
        export_spec(module)


def test_a_graph_network_trains_predicts_and_gets_a_one_line_export_refusal(project, user_cli):
    """The dict batch used to crash export with a traceback: its entries were cut to 2 rows each."""
    model = ["--model", "usermods.GNN", "--data", "usermods.GraphData", "--data.as_dict", "true"]
    fit = user_cli("fit", *model, *QUICK, "--run", "g")
    assert fit.returncode == 0, fit.stderr
    assert "ambiguous collection" not in fit.stderr  # the sample count no longer guesses from nodes
    perf = json.loads((project / "runs/gnn/g/perf.json").read_text())
    assert perf["samples"] is None and perf["steps"] > 0
    predicted = user_cli("predict", "--run", "g")
    assert predicted.returncode == 0, predicted.stderr
    rows = (project / "runs/gnn/g/predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 16  # one row per validation graph
    exported = user_cli("export", "--run", "g")
    assert exported.returncode == 2
    assert "share no batch axis 0" in exported.stderr
    assert "Traceback" not in exported.stderr


def test_nan_in_a_dataclass_batch_is_blamed_on_the_data_not_the_learning_rate(user_cli):
    fit = user_cli(
        "fit", "--model", "usermods.GNN", "--data", "usermods.GraphData", "--data.nan_nodes", "48", *QUICK
    )
    assert fit.returncode != 0
    assert "inputs are not finite (batch.x:" in fit.stderr
