"""A detector in torchvision's convention: batches of ``(images, targets)`` collated as
``tuple(zip(*samples))``, a dict of boxes per image, and a ``predict_step`` of one dict per image."""

from __future__ import annotations

import json

import usermods
from user_helpers import QUICK, csv_rows

from litforge.predictions.batch_tensors import sample_count
from litforge.testing import run_checks

CHECKS = ["data", "forward", "batch_independence", "checkpoint", "export"]


def _first_batch():
    data = usermods.BoxData()
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def test_a_zip_collated_batch_counts_its_images():
    assert sample_count(_first_batch()) == 8


def test_check_runs_forward_on_the_stacked_images_and_reads_targets_per_image():
    """forward ran on noise of batch size 1 (the first image's channel axis), so batch_independence was
    skipped and a model mixing images passed; the data check failed on every target's box count."""
    results = {r.name: r for r in run_checks(usermods.Detector(), usermods.BoxData(), only=CHECKS)}
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(CHECKS, "PASS"), {
        name: r.detail for name, r in results.items()
    }
    assert results["forward"].detail.startswith("(8, 1, 8, 8) float32")
    assert (
        "per sample, of varying shapes: batch[1][i]['boxes'], batch[1][i]['labels']" in results["data"].detail
    )
    (mixing,) = run_checks(usermods.MixesImages(), usermods.BoxData(), only=["batch_independence"])
    assert mixing.status == "FAIL" and "forward mixes samples" in mixing.detail


def test_predict_writes_a_row_per_image_with_its_detections_as_json(project, user_cli):
    fit = user_cli("fit", "--model", "usermods.Detector", "--data", "usermods.BoxData", *QUICK, "--run", "d")
    assert fit.returncode == 0, fit.output
    predicted = user_cli("predict", "--run", "d", "--model.threshold", "0.0")  # every cell: a box each
    assert predicted.returncode == 0, predicted.output
    rows = csv_rows(project / "runs/detector/d/predictions.csv")
    assert [row["row"] for row in rows] == [str(i) for i in range(8)]
    boxes, scores = json.loads(rows[0]["boxes"]), json.loads(rows[0]["scores"])
    assert len(boxes) == len(scores) == 16 and all(len(box) == 4 for box in boxes)
