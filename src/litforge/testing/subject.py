"""What the checks run on: a model (instance or factory), its data, and the real batch drawn from it.

python -c "from litforge.testing import run_checks; ..."   # see docs/testing.md
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.seed import isolate_rng

from litforge._compat.torch import tree_leaves
from litforge.data.module_setup import builds_in_setup, set_up_with_data
from litforge.errors import first_line  # noqa: F401  (used by the checks)
from litforge.predictions.batch_tensors import sample_count
from litforge.predictions.forward_inputs import forward_inputs_from_batch

ModelLike = L.LightningModule | Callable[[], L.LightningModule]
DataLike = L.LightningDataModule | Iterable[Any] | Callable[[], L.LightningDataModule] | None

# Batch entries that hold integer class labels, when a batch is a dict.
IGNORE_INDEX = -100  # PyTorch's and Hugging Face's "no label here" marker, allowed below 0


class SkipCheck(Exception):
    """The check does not apply to this module or data; the message says why (reported as SKIP)."""


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The global RNGs seeded with ``seed`` inside and restored on exit: data drawn in here (a shuffled
    ``DataLoader``, a ``random_split``) is the same whatever ran before, and leaves the random state of
    the caller, e.g. a check's model initialisation, untouched."""
    with isolate_rng():
        L.seed_everything(seed, verbose=False)
        yield


@dataclass
class Subject:
    """A LightningModule (or a zero-argument factory) and its data, shared by the checks of one run.

    Each check gets a fresh module from ``new_model()``: a deep copy of an instance (so the caller's
    module is never touched) or a new call of the factory.

    Args:
        model: a ``LightningModule`` or a callable (e.g. the class) that builds one.
        data: a ``LightningDataModule`` (or a callable building one), a ``DataLoader``/iterable of batches,
            or ``None`` to use the module's own ``train_dataloader``.
        seed: seed used by ``seed_everything`` before every check.
        trainer_kwargs: overrides for the tiny trainers the checks run (e.g. ``accelerator="gpu"``).
    """

    model: ModelLike
    data: DataLike = None
    seed: int = 0
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)

    def new_model(self, configure: bool = False) -> L.LightningModule:
        """A fresh module, after ``seed_everything(seed)``: a deep copy of the given instance, or a new one
        from the factory. Every check starts from here, so its random state is the same on every run.

        ``configure=True`` also runs the module's ``configure_model`` hook (layers built or compiled there),
        as the Trainer and ``load_from_checkpoint`` do; checks that run a Trainer leave it to the Trainer.
        A module with its own ``setup()`` has it run with the datamodule (``self.trainer.datamodule``), as the
        Trainer runs it; the checks' Trainers, which have no datamodule, then find its layers built."""
        L.seed_everything(self.seed, verbose=False)
        model = copy.deepcopy(self.model) if isinstance(self.model, L.LightningModule) else self.model()
        if not isinstance(model, L.LightningModule):
            raise TypeError(f"the model factory returned {type(model).__name__}, not a LightningModule")
        if builds_in_setup(model) and self.datamodule is not None:
            set_up_with_data(model, self.datamodule, "fit")  # a layer built from self.trainer.datamodule
        if configure and is_overridden("configure_model", model):
            model.configure_model()
        return model

    @cached_property
    def prototype(self) -> L.LightningModule:
        """One module to read attributes from (``hparams``, ``example_input_array``); never trained."""
        return self.model if isinstance(self.model, L.LightningModule) else self.new_model()

    @cached_property
    def datamodule(self) -> L.LightningDataModule | None:
        """The datamodule, built (from a factory) and set up under ``seeded(seed)``."""
        data = self.data
        with seeded(self.seed):
            if callable(data) and not isinstance(data, (L.LightningDataModule, Iterable)):
                data = data()
            if isinstance(data, L.LightningDataModule):
                data.prepare_data()
                data.setup("fit")
                return data
        return None

    def loaders(self) -> dict[str, Iterable[Any]]:
        """``{"train": loader, "val": loader}`` from the datamodule, the iterable, or the module itself."""
        source: Any = self.datamodule
        if source is None and self.data is not None and not callable(self.data):
            return {"train": self.data}
        if source is None:
            source = self.prototype
            if not is_overridden("train_dataloader", source):
                raise SkipCheck(
                    "no data: pass a datamodule or a dataloader (the module has no train_dataloader)"
                )
        loaders = {"train": source.train_dataloader()}
        if is_overridden("val_dataloader", source):
            loaders["val"] = source.val_dataloader()
        return loaders

    @cached_property
    def first_batches(self) -> list[Any]:
        """The first two training batches (fewer if the loader has fewer), drawn once under ``seeded(seed)``:
        the same whichever check asks first. A check that hands the datamodule to a Trainer draws them
        before: the Trainer runs ``setup`` again, and a ``random_split`` there would re-split the data."""
        with seeded(self.seed):
            return list(itertools.islice(self.loaders()["train"], 2))

    @property
    def batch(self) -> Any:
        """The first training batch: the real data every check runs on."""
        if not self.first_batches:
            raise AssertionError("the training dataloader is empty")
        return self.first_batches[0]

    @property
    def second_batch(self) -> Any | None:
        """The second training batch (``None`` when there is only one): unseen data for export parity."""
        return self.first_batches[1] if len(self.first_batches) > 1 else None

    @cached_property
    def num_classes(self) -> int | None:
        """From the datamodule's ``num_classes`` or the module's ``hparams.num_classes``, if either has it."""
        for value in (
            getattr(self.datamodule, "num_classes", None),
            self.prototype.hparams.get("num_classes"),
        ):
            if isinstance(value, int):
                return value
        return None

    @property
    def name(self) -> str:
        return type(self.prototype).__name__


def as_subject(model: ModelLike | Subject, data: DataLike = None) -> Subject:
    """Wrap ``model`` and ``data`` in a ``Subject`` (a ``Subject`` passes through unchanged)."""
    return model if isinstance(model, Subject) else Subject(model, data)


def prepare_batch(model: L.LightningModule, batch: Any) -> Any:
    """Run the module's batch-transfer hooks and move ``batch`` to its device, as the Trainer would."""
    batch = model.on_before_batch_transfer(batch, 0)
    batch = model.transfer_batch_to_device(batch, model.device, 0)
    return model.on_after_batch_transfer(batch, 0)


def model_input(model: L.LightningModule, batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``forward``'s ``(args, kwargs)`` for a real batch: the batch itself when it is a tensor, its first
    element when it is a tuple/list, the keys of a dict ``example_input_array`` when it is a dict.

    When ``example_input_array`` has another layout than that (a GAN's ``forward(z)`` takes noise, not the
    batch's images), the input is shaped like the example instead, at the real batch size."""
    from_batch = forward_inputs_from_batch(model, batch)
    if not input_from_example(model, batch):
        if from_batch is None:
            raise SkipCheck(
                f"cannot tell forward's input in a {type(batch).__name__} batch: make the input the batch's "
                "first element, name forward's parameters after the batch's keys, or set "
                "example_input_array to a dict of forward's keyword arguments"
            )
        return from_batch
    size = _first_dim(batch)
    example = model.example_input_array
    inputs = _grow(example, size) if size else example
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    return (tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)), {}


def input_from_example(model: L.LightningModule, batch: Any) -> bool:
    """True when ``forward`` does not take the batch's data but inputs shaped like ``example_input_array``:
    same dtypes and rank, and the same per-sample shape for floating tensors, means the batch's data."""
    example = model.example_input_array
    if example is None:
        return False
    from_batch = forward_inputs_from_batch(model, batch)
    if from_batch is None:
        return True
    given = [t for t in tree_leaves(from_batch) if isinstance(t, torch.Tensor)]
    wanted = [t for t in tree_leaves(example) if isinstance(t, torch.Tensor)]
    return len(given) != len(wanted) or any(
        g.dtype != w.dtype or g.ndim != w.ndim or (g.is_floating_point() and g.shape[1:] != w.shape[1:])
        for g, w in zip(given, wanted, strict=True)
    )


def _first_dim(batch: Any) -> int | None:
    """The batch's sample count (its first tensor's axis 0 when the batch does not say)."""
    if (count := sample_count(batch)) is not None:
        return count
    tensors = [t for t in tree_leaves(batch) if isinstance(t, torch.Tensor) and t.ndim]
    return int(tensors[0].shape[0]) if tensors else None


def _grow(example: Any, size: int) -> Any:
    """``example_input_array`` at batch size ``size``: standard-normal floats (e.g. a GAN's noise; the same
    on every call, so checks comparing two forwards see one input), the example's rows repeated otherwise."""
    from litforge._compat.torch import tree_map

    generator = torch.Generator().manual_seed(0)

    def grow(t: Any) -> Any:
        if not isinstance(t, torch.Tensor) or t.ndim == 0:
            return t
        if t.is_floating_point():
            return torch.randn(size, *t.shape[1:], dtype=t.dtype, generator=generator).to(t.device)
        return t[torch.arange(size) % t.shape[0]]

    return tree_map(grow, example)


def batch_size_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The leading dimension of the first input tensor."""
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t.ndim > 0]
    if not tensors:
        raise SkipCheck("forward's input has no batched tensor")
    return int(tensors[0].shape[0])


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor in a forward output (a tensor, tuple, dict, dataclass registered with pytree...)."""
    return [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]


def shape_text(tensor: torch.Tensor) -> str:
    """``(64, 10) float32``."""
    return f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def name_list(names: list[str], limit: int = 8) -> str:
    """``a, b, c and 4 more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
