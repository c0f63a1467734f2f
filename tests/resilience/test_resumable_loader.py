"""Users' plain ``DataLoader``s resume exactly too: ``as_resumable`` rebuilds them as ``StatefulDataLoader``s
that yield the same batches, and ``kill -9`` mid-epoch plus ``--resume auto`` ends bit for bit where an
uninterrupted run ends, for a user DataModule with ``DataLoader(shuffle=True)`` (with and without worker
processes) and one with dict batches."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
import usermods
from resilience_helpers import assert_bitwise_equal, bare_trainer, final_state, run_until
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from litforge.resilience import resilience_callbacks
from litforge.resilience.resumable_loader import NotResumable, as_resumable


def epochs(loader, count: int = 3) -> list[list[list[int]]]:
    """The samples of ``count`` epochs, batch by batch (the label tensor of each batch)."""
    return [[batch[1].tolist() for batch in loader] for _ in range(count)]


DATA = TensorDataset(torch.randn(23, 2), torch.arange(23))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DataLoader(DATA, batch_size=5, shuffle=True),  # global generator
        lambda: DataLoader(DATA, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(3)),
        lambda: DataLoader(DATA, batch_size=5, shuffle=True, drop_last=True),
        lambda: DataLoader(DATA, batch_size=4, sampler=RandomSampler(DATA, replacement=True, num_samples=30)),
        lambda: DataLoader(DATA, batch_sampler=BatchSampler(RandomSampler(DATA), 6, drop_last=False)),
        lambda: DataLoader(DATA, batch_size=5),
    ],
    ids=["shuffle", "own-generator", "drop-last", "replacement", "batch-sampler", "sequential"],
)
def test_rebuilt_loader_yields_the_same_batches_and_draws_the_same_numbers(make) -> None:
    torch.manual_seed(11)
    expected, expected_after = epochs(make()), torch.rand(3)
    torch.manual_seed(11)
    resumable = as_resumable(make())
    assert isinstance(resumable, StatefulDataLoader)
    assert epochs(resumable) == expected
    assert torch.equal(torch.rand(3), expected_after), "the global generator is drawn from as before"


@pytest.mark.parametrize("stop_at", [0, 2, 5])  # before the first batch, mid-epoch, after the last batch
def test_rebuilt_loader_resumes_mid_epoch_from_the_global_generator(stop_at: int) -> None:
    def make() -> StatefulDataLoader:
        return as_resumable(DataLoader(DATA, batch_size=5, shuffle=True))

    torch.manual_seed(5)
    expected = epochs(make(), 2)
    torch.manual_seed(5)
    first = make()
    iterator = iter(first)
    seen = [next(iterator)[1].tolist() for _ in range(stop_at)]
    state, rng = first.state_dict(), torch.get_rng_state()  # what a checkpoint holds (RNGState: the rng)

    torch.manual_seed(99)  # a new process
    resumed = make()
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    rest = epochs(resumed, 2 if stop_at < 5 else 1)
    assert [seen + rest[0], *rest[1:]] == expected if stop_at < 5 else rest == expected[1:]


def tiny_trainer(root: Path, *callbacks: L.Callback, **kwargs) -> L.Trainer:
    """2 epochs of 3 batches, no validation, litforge's resilience callbacks writing into ``root``."""
    return bare_trainer(
        *resilience_callbacks(root, every_n_train_steps=100),
        *callbacks,
        max_epochs=2,
        limit_train_batches=3,
        **kwargs,
    )


def test_a_loader_that_cannot_be_resumable_is_named_once_on_stderr(tmp_path: Path, capsys) -> None:
    with pytest.raises(NotResumable, match="IterableDataset Stream has no state_dict"):
        as_resumable(usermods.StreamData().train_dataloader())
    # torchdata's loader over the same stream replays it on resume: no better unless the stream has state
    with pytest.raises(NotResumable, match="IterableDataset Stream has no state_dict") as raised:
        as_resumable(StatefulDataLoader(usermods.Stream(), batch_size=4))
    assert raised.value.advice.startswith(
        "give Stream state_dict/load_state_dict (a StatefulDataLoader alone"
    )
    data = usermods.StreamData()
    # reload_dataloaders_every_n_epochs: the hook is called each epoch; the note comes once
    tiny_trainer(tmp_path, reload_dataloaders_every_n_epochs=1).fit(usermods.LitModel(), data)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("litforge:")]
    assert len(lines) == 1 and "cannot resume mid-epoch (its IterableDataset Stream has no" in lines[0]
    assert lines[0].endswith("exact only if the stream draws nothing at random) (docs/fault-tolerance.md)")
    assert "train_dataloader" not in vars(data), "the hook is the class's own again after the fit"

    shuffled = usermods.MyDataModule()
    shuffled.setup("fit")
    loader = shuffled.train_dataloader()
    tiny_trainer(tmp_path).fit(usermods.LitModel(), train_dataloaders=loader)  # out of litforge's reach
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("litforge:")]
    assert len(lines) == 1 and "(it was passed to Trainer.fit directly" in lines[0]


def test_a_search_trial_says_nothing_of_a_loader_that_cannot_resume(tmp_path: Path, capsys) -> None:
    # a search's trial is retried from scratch when its worker dies, never resumed: the note is noise there,
    # printed once per trial
    trial = bare_trainer(
        *resilience_callbacks(tmp_path, every_n_train_steps=100, resumable=False),
        max_epochs=1,
        limit_train_batches=3,
    )
    trial.fit(usermods.LitModel(), usermods.StreamData())
    assert "cannot resume" not in capsys.readouterr().err


def test_a_from_datasets_datamodule_keeps_its_own_hook(tmp_path: Path) -> None:
    samples = TensorDataset(torch.randn(24, 8), torch.randint(0, 3, (24,)))
    data = L.LightningDataModule.from_datasets(samples, batch_size=8)  # its hook is an instance attribute
    own_hook = data.train_dataloader
    seen = []

    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append(trainer.train_dataloader)

    tiny_trainer(tmp_path, Record()).fit(usermods.LitModel(input_dim=8), data)
    assert isinstance(seen[0], StatefulDataLoader)
    assert data.train_dataloader is own_hook


FIT = [
    "--trainer.max_epochs", "3",
    "--trainer.deterministic", "true",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--checkpoint_every_n_steps", "2",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "data", "batch_size", "workers", "kills"),
    [
        # DataLoader(shuffle=True) on the global RNG, dropout too; 7 batches an epoch: killed after step 4's
        # checkpoint (mid-epoch) and at an epoch's end (step 14)
        ("LitModel", "MyDataModule", 32, 0, (5, 14)),
        # the same with a worker process, which takes its indices batches ahead of the checkpoint
        ("LitModel", "MyDataModule", 32, 1, (5, 14)),
        # dict batches from a custom collate_fn, the user's own seeded generator; 10 batches, the last one
        # partial: killed in epoch 1, after the checkpoint of step 14
        ("DictBatchModel", "DictData", 13, 0, (15,)),
        # a persistent validation worker: its seed, drawn from the global generator when the first
        # validation made its iterator, was drawn again after the resume, and epoch 2 shuffled otherwise
        ("LitModel", "PersistentValData", 32, 0, (9,)),
    ],
    ids=["shuffle-true", "shuffle-true-workers", "dict-batches", "persistent-validation-worker"],
)
def test_kill_9_mid_epoch_and_resume_auto_is_bitwise_exact_for_a_users_loader(
    tmp_path: Path, model: str, data: str, batch_size: int, workers: int, kills: tuple[int, ...]
) -> None:
    shutil.copy(usermods.__file__, tmp_path / "usermods.py")  # the user's file in the working directory
    classes = ["--model", f"usermods.{model}", "--data", f"usermods.{data}"]
    args = ["fit", *classes, *FIT, "--data.batch_size", str(batch_size)]
    if workers:
        args += ["--data.num_workers", str(workers)]
    code, output = run_until([*args, "--run", "ref"], tmp_path)
    assert code == 0, output[-3000:]
    runs = tmp_path / "runs" / model.lower()
    final_step = torch.load(runs / "ref" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    reference = final_state(runs / "ref" / "checkpoints", final_step)

    resume = [*args, "--run", "r", "--resume", "auto"]
    for step in kills:  # kill -9 from inside, right before the batch of ``step``
        kill = ["--trainer.callbacks+=crash_helpers.KillAt", "--trainer.callbacks.init_args.step", str(step)]
        code, output = run_until([*resume, *kill], tmp_path)
        assert code == -signal.SIGKILL, output[-3000:]
    code, output = run_until(resume, tmp_path)
    assert code == 0, output[-3000:]
    assert "resuming from" in output and "not resumable" not in output
    final = final_state(runs / "r" / "checkpoints", final_step)
    assert_bitwise_equal(final[0], reference[0], "model")
    assert_bitwise_equal(final[1], reference[1], "optimizer")


def test_a_resume_mid_epoch_with_a_loader_that_cannot_names_the_epoch_end_checkpoint(
    tmp_path: Path, capsys
) -> None:
    """The generic start-up line did not say that this very resume was inexact, nor that an epoch-end
    checkpoint of the run would have been exact."""
    checkpoints = tmp_path / "checkpoints"
    epochs_of_3 = dict(limit_train_batches=3, default_root_dir=tmp_path)
    bare_trainer(*resilience_callbacks(checkpoints, every_n_train_steps=3), max_steps=3, **epochs_of_3).fit(
        usermods.LitModel(), usermods.StreamData()
    )
    shutil.copy(checkpoints / "step-00000003.ckpt", checkpoints / "last.ckpt")  # the end of epoch 0
    bare_trainer(*resilience_callbacks(checkpoints, every_n_train_steps=1), max_steps=5, **epochs_of_3).fit(
        usermods.LitModel(), usermods.StreamData(), ckpt_path=checkpoints / "last.ckpt"
    )  # on to step 5, two batches into epoch 1
    capsys.readouterr()
    resumed = bare_trainer(
        *resilience_callbacks(checkpoints, every_n_train_steps=100), max_epochs=2, **epochs_of_3
    )
    resumed.fit(usermods.LitModel(), usermods.StreamData(), ckpt_path=checkpoints / "step-00000005.ckpt")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("litforge:")]
    assert len(lines) == 1 and lines[0].startswith(
        "litforge: this run resumes mid-epoch (step 5) with a training"
    )
    assert f"--resume {checkpoints / 'last.ckpt'} resumes exactly, from the last epoch end" in lines[0]
