"""``predict --artifact`` and ``serve`` on export folders someone else made: a ``.pt2`` that torch would
unpickle from is refused before loading (the sha256 in export.json is no defence: whoever wrote the
archive wrote export.json too), and export.json's file entries cannot reach outside the folder.

The crafted archives are generated here from a real ``torch.export.save`` (no binaries in the repository);
each payload would create MARKER if it ran.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from payloads import RunsShell, torch_saved

from litforge.export.metadata import sha256


def _export_folder(folder: Path) -> Path:
    """A minimal export folder with a genuine model.pt2 of a Linear(4, 1) regression."""
    folder.mkdir()
    program = torch.export.export(
        torch.nn.Linear(4, 1), (torch.zeros(2, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, folder / "model.pt2")
    _write_record(folder, "model.pt2")
    return folder


def _write_record(folder: Path, file: str, target: Path | None = None) -> None:
    record = {
        "formats": {
            "pt2": {"file": file, "sha256": sha256(target or folder / file), "runtime": "torch.export"}
        },
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 4]}],
        "request_format": "features",
        "output_head": "regression",
    }
    (folder / "export.json").write_text(json.dumps(record))


def _rewrite(archive: Path, change) -> None:
    """Rewrite ``archive`` entry by entry: ``change(relative name, bytes) -> bytes``."""
    with zipfile.ZipFile(archive) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    root = entries[0][0].split("/", 1)[0] + "/"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries:
            target.writestr(name, change(name.removeprefix(root), data))


def _pickle_a_weight(name: str, data: bytes, payload: bytes) -> bytes:
    if name.endswith("_weights_config.json"):
        config = json.loads(data)
        for entry in config["config"].values():
            entry["use_pickle"] = True
        return json.dumps(config).encode()
    return payload if name.startswith("data/weights/weight_") else data


def _pickle_the_sample_inputs(name: str, data: bytes, payload: bytes) -> bytes:
    return payload if name.startswith("data/sample_inputs/") else data


@pytest.mark.parametrize("command", ["predict", "serve"])
@pytest.mark.parametrize(
    ("tamper", "named"),
    [(_pickle_a_weight, "is pickled (use_pickle)"), (_pickle_the_sample_inputs, "data/sample_inputs/")],
    ids=["pickled-weight", "pickled-sample-inputs"],
)
def test_a_pt2_that_would_unpickle_is_refused_before_loading(
    cli, tmp_path: Path, command: str, tamper, named: str
) -> None:
    folder = _export_folder(tmp_path / "export")
    payload = torch_saved(RunsShell(f"touch {tmp_path / 'MARKER'}"))
    _rewrite(folder / "model.pt2", lambda name, data: tamper(name, data, payload))
    _write_record(folder, "model.pt2")  # a matching sha256
    (tmp_path / "rows.csv").write_text("1,2,3,4\n")
    if command == "predict":
        result = cli("predict", "--artifact", "export", "--input", "rows.csv", timeout=120)
    else:  # loads the artifact before it serves anything
        result = cli("serve", "export", "--port", "18765", timeout=120)
    assert result.returncode == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "model.pt2 is refused as unsafe" in result.stderr and named in result.stderr
    assert not (tmp_path / "MARKER").exists(), "the payload ran"
    assert not (tmp_path / "rows.predictions.csv").exists()


def test_a_genuine_pt2_still_loads(cli, tmp_path: Path) -> None:
    _export_folder(tmp_path / "export")
    (tmp_path / "rows.csv").write_text("1,2,3,4\n0,0,0,0\n")
    result = cli("predict", "--artifact", "export", "--input", "rows.csv")
    assert result.returncode == 0, result.output
    assert (tmp_path / "rows.predictions.csv").read_text().splitlines()[0] == "row,prediction"


@pytest.mark.parametrize("where", ["parent", "absolute", "link"])
def test_export_json_cannot_point_outside_the_folder(cli, tmp_path: Path, where: str) -> None:
    """Each target is a genuine artifact with a matching sha256: before, it was read, hashed and served."""
    folder = _export_folder(tmp_path / "export")
    outside = tmp_path / "outside.pt2"
    shutil.move(folder / "model.pt2", outside)
    file = {"parent": "../outside.pt2", "absolute": str(outside), "link": "model.pt2"}[where]
    if where == "link":
        (folder / "model.pt2").symlink_to(outside)
    _write_record(folder, file, target=outside)
    (tmp_path / "rows.csv").write_text("1,2,3,4\n")
    result = cli("predict", "--artifact", "export", "--input", "rows.csv")
    assert result.returncode == 2, result.output
    assert "formats.pt2.file" in result.stderr and "refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "rows.predictions.csv").exists()
