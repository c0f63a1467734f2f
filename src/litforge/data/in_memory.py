"""Base class for classification data that fits in memory: one features tensor, one labels tensor.

Subclasses implement ``load_arrays()``; this class makes the deterministic train/val/test split,
computes the normalisation statistics on the training split (the model applies them, so exported
models take raw inputs) and builds the loaders: the fast path (``TensorBatchLoader``, whole-batch
indexing) by default, torchdata's ``StatefulDataLoader`` with ``fast_path: false``, worker processes or
several devices. Both are resumable mid-epoch and yield the same batches in the same order.
"""

from __future__ import annotations

from functools import cached_property

import lightning as L
import numpy as np
import torch
from torch.utils.data import RandomSampler, Sampler, TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from litforge.data.seeded_sampler import SeededRandomSampler
from litforge.data.tensor_loader import TensorBatchLoader


class InMemoryDataModule(L.LightningDataModule):
    """Classification features ``X`` (N, F) and integer labels ``y`` (N,) held in memory.

    Args:
        batch_size: samples per batch for every split.
        num_workers: loader worker processes (0 loads in the main process, fastest for in-memory data).
        val_fraction: share of samples held out for validation.
        test_fraction: share of samples held out for testing.
        seed: seed of the split permutation and of the training shuffle order.
        normalize: expose per-feature mean/std of the training split for the model to apply.
        fast_path: batches by whole-batch tensor indexing (``TensorBatchLoader``) instead of per-sample
            ``__getitem__`` + collate; used when ``num_workers`` is 0 on a single device.
        pin_memory: page-locked batches for faster host-to-GPU copies (ignored without CUDA).
        prefetch_to_device: (fast path) copy the next batch to the training device while a step runs.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
        normalize: bool = True,
        fast_path: bool = True,
        pin_memory: bool = False,
        prefetch_to_device: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) "
                "and sum to less than 1"
            )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.normalize = normalize
        self.fast_path = fast_path
        self.pin_memory = pin_memory
        self.prefetch_to_device = prefetch_to_device
        features, labels, self.class_names = self.load_arrays()
        self._split(torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long))

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Return features (N, F) float, labels (N,) int in ``[0, num_classes)`` and the class names."""
        raise NotImplementedError

    # -- sizes the CLI links into the model -------------------------------------------------------
    @property
    def num_features(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @cached_property  # the splits are fixed at construction; the CLI's links read these more than once
    def feature_mean(self) -> list[float] | None:
        return self.train_x.mean(dim=0).tolist() if self.normalize else None

    @cached_property
    def feature_std(self) -> list[float] | None:
        if not self.normalize:
            return None
        std = self.train_x.std(dim=0)
        # Constant features (e.g. always-blank pixels) get std 1 so they pass through unchanged.
        return torch.where(std > 1e-6, std, torch.ones_like(std)).tolist()

    # -- splits ------------------------------------------------------------------------------------
    def _split(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(labels)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        n_test, n_val = int(n * self.test_fraction), int(n * self.val_fraction)
        test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        self.train_x, self.train_y = features[train_idx], labels[train_idx]
        self.val_x, self.val_y = features[val_idx], labels[val_idx]
        self.test_x, self.test_y = features[test_idx], labels[test_idx]

    def _loader(
        self, x: torch.Tensor, y: torch.Tensor, shuffle: bool
    ) -> TensorBatchLoader | StatefulDataLoader:
        # Every loader gets its own generator, unshuffled ones too: a ``StatefulDataLoader`` without one
        # draws its worker base seed from the global RNG at each ``iter()``, which shifts the dropout masks
        # of a resumed run that skips a validation the uninterrupted run did (a checkpoint after an
        # epoch's last batch resumes past that epoch's validation).
        generator = torch.Generator().manual_seed(self.seed)
        if self.uses_fast_path:
            trainer = self.trainer
            device = trainer.strategy.root_device if trainer is not None and self.prefetch_to_device else None
            return TensorBatchLoader(
                x,
                y,
                batch_size=self.batch_size,
                shuffle=shuffle,
                generator=generator,
                rng_order="torch",
                pin_memory=self.pin_memory,
                device=device,
            )
        # One device: a sampler that draws like torch's, so both paths agree batch for batch. Several:
        # torch's RandomSampler, which Lightning recognises and replaces with a DistributedSampler whose
        # order depends only on (seed, epoch). (torchdata's own RandomSampler, from shuffle=True, is not
        # recognised: Lightning would wrap it, keeping an order drawn from the running generator.)
        dataset = TensorDataset(x, y)
        sampler: Sampler[int] | None = None
        if shuffle:
            sampler = (
                SeededRandomSampler(len(x), generator)
                if self._single_device
                else RandomSampler(dataset, generator=generator)
            )
        return StatefulDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )

    @property
    def _single_device(self) -> bool:
        return self.trainer is None or self.trainer.world_size == 1

    @property
    def uses_fast_path(self) -> bool:
        """The fast path needs in-process loading on one device (several devices shard with a sampler)."""
        return self.fast_path and self.num_workers == 0 and self._single_device

    def train_dataloader(self) -> TensorBatchLoader | StatefulDataLoader:
        return self._loader(self.train_x, self.train_y, shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader | StatefulDataLoader:
        return self._loader(self.val_x, self.val_y, shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader | StatefulDataLoader:
        return self._loader(self.test_x, self.test_y, shuffle=False)

    def predict_dataloader(self) -> TensorBatchLoader | StatefulDataLoader:
        return self._loader(self.test_x, self.test_y, shuffle=False)
