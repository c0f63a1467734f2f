"""Reference DataModules: deterministic splits, sizes for linking, normalisation statistics, CSV input."""

from __future__ import annotations

import pytest
import torch

from litforge.data import CSVDataModule, DigitsDataModule, SyntheticDataModule


def test_digits_split_is_deterministic_and_disjoint():
    a, b = DigitsDataModule(seed=1), DigitsDataModule(seed=1)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, DigitsDataModule(seed=2).train_x)
    assert len(a.train_y) + len(a.val_y) + len(a.test_y) == 1797
    assert (a.num_features, a.num_classes) == (64, 10)
    assert a.train_x.max() <= 16 and a.train_x.min() >= 0  # raw pixel values: the model normalises


def test_normalisation_statistics_come_from_the_training_split():
    dm = DigitsDataModule()
    mean, std = torch.tensor(dm.feature_mean), torch.tensor(dm.feature_std)
    assert torch.allclose(mean, dm.train_x.mean(0))
    assert (std > 0).all()  # constant (always blank) pixels get std 1, not 0
    assert DigitsDataModule(normalize=False).feature_mean is None


def test_training_order_is_seeded_and_batches_have_the_configured_size():
    dm = DigitsDataModule(batch_size=32, seed=3)
    first = [y for _, y in dm.train_dataloader()]
    again = [y for _, y in DigitsDataModule(batch_size=32, seed=3).train_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert first[0].shape == (32,)


def test_synthetic_is_deterministic_and_balanced():
    dm = SyntheticDataModule(num_samples=400, num_features=5, num_classes=4, seed=0)
    assert torch.equal(
        dm.train_x, SyntheticDataModule(num_samples=400, num_features=5, num_classes=4, seed=0).train_x
    )
    labels = torch.cat([dm.train_y, dm.val_y, dm.test_y])
    assert torch.bincount(labels).tolist() == [100] * 4
    assert dm.num_features == 5


def test_csv_reads_string_labels_and_named_columns(tmp_path):
    rows = ["a,b,species"] + [f"{i},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(40)]
    path = tmp_path / "pets.csv"
    path.write_text("\n".join(rows) + "\n")
    dm = CSVDataModule(str(path), label_column="species")
    assert dm.class_names == ["cat", "dog"] and dm.num_features == 2
    assert CSVDataModule(str(path), label_column="species", feature_columns=["b"]).num_features == 1


@pytest.mark.parametrize(
    ("content", "kwargs", "needle"),
    [
        (None, {}, "no such file"),
        ("a,label\n", {}, "no data rows"),
        ("a,label\n1,x\n", {"label_column": "y"}, "label_column"),
        ("a,label\nfoo,x\n", {}, "column .a., line 2 of .* holds .foo., not a number"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, content, kwargs, needle):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=needle):
        CSVDataModule(str(path), **kwargs)


def test_bad_split_fractions_are_rejected():
    with pytest.raises(ValueError, match="val_fraction"):
        DigitsDataModule(val_fraction=0.6, test_fraction=0.5)


@pytest.mark.parametrize(
    ("label", "needle"),
    [
        (lambda i: f"{i * 0.37:.2f}", "holds fractional numbers"),
        (lambda i: str(i), "has 40 distinct labels in 40 rows"),
    ],
    ids=["fractional", "a-label-per-row"],
)
def test_a_regression_target_is_refused_as_labels(tmp_path, label, needle) -> None:
    """A float target read as class labels trained a 300-class classifier that learned nothing, silently."""
    path = tmp_path / "reg.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 7},{label(i)}\n" for i in range(40)))
    with pytest.raises(ValueError, match=needle):
        CSVDataModule(str(path), label_column="y")


@pytest.mark.parametrize(
    ("cell", "needle"),
    [("", "column 'b', line 3 of .* is empty"), ("green", "column 'b', line 3 of .* holds 'green'")],
)
def test_a_feature_cell_that_is_no_number_is_named_by_column_and_line(tmp_path, cell, needle) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text(f"a,b,y\n1,2,x\n3,{cell},z\n" + "".join(f"{i},{i},x\n" for i in range(20)))
    with pytest.raises(ValueError, match=needle):
        CSVDataModule(str(path), label_column="y")
