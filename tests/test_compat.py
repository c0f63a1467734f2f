"""Conformance of litforge._compat with the installed Lightning, torch, Optuna and standard library: every
private name litforge relies on still exists with the shape it expects. A failure names what changed."""

from __future__ import annotations

import argparse
import inspect

import pytest
from lightning.pytorch import cli as lightning_cli
from lightning.pytorch.trainer import call

from litforge._compat import lean_hooks
from litforge._compat.argparse import parser_actions
from litforge._compat.lightning_cli import HookedLightningCLI


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_lightning_cli_private_steps_that_hooked_cli_overrides() -> None:
    cli = lightning_cli.LightningCLI
    assert _parameters(cli._prepare_subcommand_parser) == ["self", "klass", "subcommand", "kwargs"]
    assert _parameters(cli._add_instantiators) == ["self"]
    assert _parameters(cli._set_seed) == ["self"]
    assert _parameters(cli._run_subcommand) == ["self", "subcommand"]
    assert _parameters(cli._get) == ["self", "config", "key", "default"]
    assert _parameters(cli._parse_ckpt_path) == ["self"]
    assert _parameters(cli._add_configure_optimizers_method_to_model) == ["self", "subcommand"]
    for name in (
        "_prepare_subcommand_parser",
        "_add_instantiators",
        "_set_seed",
        "_run_subcommand",
        "_parse_ckpt_path",
        "_add_configure_optimizers_method_to_model",
    ):
        assert name in vars(HookedLightningCLI), f"HookedLightningCLI no longer overrides {name}"


def test_lightnings_instantiator_takes_cli_and_key_and_the_links() -> None:
    instantiator = lightning_cli._InstantiatorFn
    assert _parameters(instantiator.__init__) == ["self", "cli", "key"]
    assert "applied_instantiation_links" in _parameters(instantiator.__call__)


def test_the_hook_dispatch_functions_lean_hooks_replaces() -> None:
    for name, original in lean_hooks._ORIGINAL.items():
        assert callable(getattr(call, name)), name
        assert _parameters(original)[:2] == ["trainer", "hook_name"], name


def test_argparse_keeps_its_actions_list() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flag", help="x")
    assert [a.dest for a in parser_actions(parser)] == ["help", "flag"]


def test_optunas_trial_table_knows_heartbeats() -> None:
    from optuna.storages._rdb import models
    from sqlalchemy.orm import configure_mappers

    configure_mappers()  # ``heartbeats`` is a backref, added when the mappers are configured
    for column in ("trial_id", "study_id", "state", "heartbeats"):
        assert hasattr(models.TrialModel, column), column


def test_torch_pytree_and_the_onnx_exporters_logger() -> None:
    import importlib

    from litforge._compat import torch as torch_compat

    assert torch_compat.tree_leaves({"a": [1, (2, 3)]}) == [1, 2, 3]
    assert torch_compat.tree_map(lambda x: x * 2, [1, {"b": 2}]) == [2, {"b": 4}]
    importlib.import_module(torch_compat._ONNX_REGISTRATION_LOGGER)  # the logger is named after its module
    folding = importlib.import_module(torch_compat._ONNX_CONSTANT_FOLDING_LOGGER)
    assert folding.logger.name == torch_compat._ONNX_CONSTANT_FOLDING_LOGGER


def test_lightnings_tracing_context_quiets_the_trainer_properties() -> None:
    import lightning as L

    from litforge._compat.lightning import jit_tracing

    module = L.LightningModule()
    with jit_tracing():
        assert module._jit_is_scripting is True
    assert module._jit_is_scripting is False


def test_lightning_internals_the_resilience_pieces_read(tmp_path) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy

    from litforge._compat import lightning as compat

    seen: dict[str, object] = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            loader, fetcher = compat.fit_loop_data(trainer)
            seen["loader"], seen["fetcher"] = loader is not None, fetcher is not None
            seen["validation_follows"] = compat.validation_follows(trainer)
            seen.setdefault("only_accumulated", []).append(compat.only_accumulated(trainer))

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
            seen["saved"] = compat.saved_this_epoch_end(checkpoint, trainer)
            compat.drop_pending_loader_states(trainer)

    saves: list[float] = []
    trainer = L.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
        callbacks=[Probe(), ModelCheckpoint(dirpath=tmp_path, save_last=True)], enable_progress_bar=False,
        enable_model_summary=False, logger=False,
    )  # fmt: skip
    undo = compat.time_calls(trainer, "save_checkpoint", saves.append)
    trainer.fit(BoringModel())
    trainer.save_checkpoint(tmp_path / "extra.ckpt")
    undo()
    assert "save_checkpoint" not in vars(trainer) and len(saves) >= 1
    assert seen["loader"] and seen["fetcher"] and isinstance(seen["validation_follows"], bool)
    assert isinstance(seen["saved"], bool)
    assert seen["only_accumulated"] == [False, False]  # no accumulate_grad_batches: every batch steps
    assert compat.cluster_environment(trainer) is not None
    assert callable(compat.process_group_backend(DDPStrategy(process_group_backend="gloo")))
    assert compat.process_group_timeout(DDPStrategy()) is not None
    assert isinstance(compat.Stateful, type) and callable(compat.set_sampler_epoch)
    logger = TensorBoardLogger(tmp_path)
    assert compat.logger_experiment(logger) is None
    logger.experiment.add_scalar("x", 1.0, 0)
    assert compat.logger_experiment(logger) is not None
    compat.reopen_tensorboard_at(logger, 5)
    assert (
        compat.logger_experiment(logger) is None and logger._kwargs["purge_step"] == 5
    )  # the writer uses it
    assert torch.is_tensor(torch.zeros(1))


def test_dynamo_counts_graphs_and_recompilations() -> None:
    import torch

    from litforge._compat.torch import compiled_graph_count, recompilation_ids

    graphs, recompiles = compiled_graph_count(), recompilation_ids()

    @torch.compile(backend="eager", dynamic=False)
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    double(torch.ones(3))
    double(torch.ones(3))  # the same guards: no new graph
    assert compiled_graph_count() == graphs + 1 and recompilation_ids() == recompiles
    double(torch.ones(3, dtype=torch.float64))  # another dtype: a guard fails, Dynamo recompiles
    assert compiled_graph_count() == graphs + 2
    assert len(recompilation_ids() - recompiles) == 1


def test_the_epoch_aggregates_of_the_training_loop(tmp_path) -> None:
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from litforge._compat import lightning as compat

    class Logs(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("m", 2.0, on_step=False, on_epoch=True)
            self.log("top", float(batch_idx), on_step=False, on_epoch=True, reduce_fx="max")
            return out

    seen: dict[str, object] = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx == 1:
                aggregates = compat.epoch_aggregates(trainer)
                seen["states"] = {k: compat.aggregate_state(m) for k, m in aggregates.items()}
                for key, metric in aggregates.items():  # as if the batches before a resume ran twice
                    compat.add_to_aggregate(metric, seen["states"][key])

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen["m"], seen["top"] = (
                trainer.callback_metrics["m"].item(),
                trainer.callback_metrics["top"].item(),
            )

    trainer = L.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0, callbacks=[Probe()],
        enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Logs())
    states = seen["states"]
    assert {s["reduction"] for s in states.values()} == {"mean", "max"}
    mean = next(s for s in states.values() if s["reduction"] == "mean")
    assert (
        mean["count"].item() > 0 and mean["value"].item() == 2.0 * mean["count"].item()
    )  # a sum, its weights
    assert seen["m"] == 2.0 and seen["top"] == 2.0  # a mean of 2.0s stays 2.0; the max is batch 2's


def test_the_metric_objects_a_validation_logged_and_lightning_resets(tmp_path) -> None:
    import lightning as L
    import torchmetrics
    from lightning.pytorch.demos.boring_classes import BoringModel

    from litforge._compat import lightning as compat

    class Logs(BoringModel):
        def __init__(self):
            super().__init__()
            self.val_mean, self.train_mean = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()

        def training_step(self, batch, batch_idx):
            self.train_mean.update(1.0)
            self.log("train_mean", self.train_mean)
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            self.val_mean.update(2.0)
            self.log("val_mean", self.val_mean)

    seen: dict[str, list] = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen["training"] = compat.metrics_reset_after_evaluation(trainer)

        def on_validation_end(self, trainer, pl_module) -> None:
            seen["validation"] = compat.metrics_reset_after_evaluation(trainer)

    trainer = L.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=2, callbacks=[Probe()],
        enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    model = Logs()
    trainer.fit(model)
    assert seen["training"] == [] and [id(m) for m in seen["validation"]] == [id(model.val_mean)]
    assert model.val_mean.update_count == 0  # Lightning did reset it after on_validation_end


def test_the_fit_loops_epoch_end_and_plateau_step(tmp_path) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.demos.boring_classes import BoringModel

    from litforge._compat import lightning as compat

    class Plateau(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.step(batch))

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=1.0)
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, threshold=10.0)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}

    seen: dict[str, object] = {}

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            seen["mid-epoch"] = compat.in_epoch_end(trainer)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen["in_epoch_end"], seen["skipped"] = (
                compat.in_epoch_end(trainer),
                compat.plateau_step_skipped(trainer),
            )
            compat.take_plateau_steps(trainer, trainer.current_epoch)  # a step of our own, then Lightning's
            seen["after_ours"] = trainer.optimizers[0].param_groups[0]["lr"]
            compat.let_plateau_step(trainer)

    trainer = L.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[Probe()],
        enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Plateau())
    assert seen == {"mid-epoch": False, "in_epoch_end": True, "skipped": False, "after_ours": 0.1}
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)  # Lightning's step too
    assert compat.logged_step(trainer) == 2  # two batches stepped the optimizer
