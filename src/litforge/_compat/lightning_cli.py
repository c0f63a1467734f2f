"""``LightningCLI``'s private steps, turned into public hooks for litforge's engine.

LightningCLI builds each subcommand's parser, its instantiators, the seed and the subcommand call in
private methods. ``HookedLightningCLI`` overrides exactly those and calls public, documented hooks, so
the engine (``litforge.engine.lightning_cli``) overrides names of its own only. The conformance test
``tests/test_compat_lightning.py`` checks that every private name used here still exists with the
signature this module expects.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from functools import partial, update_wrapper
from types import MethodType
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, _InstantiatorFn, instantiate_class
from lightning.pytorch.utilities.model_helpers import is_overridden

# Lightning's instantiator of the model/datamodule classes (records hparams for load_from_checkpoint).
InstantiatorFn = _InstantiatorFn


@contextlib.contextmanager
def quiet_seeding() -> Iterator[None]:
    """Inside: ``seed_everything`` says nothing (no "Seed set to N" info line, no "No seed found" warning)."""
    seed_log = logging.getLogger(L.seed_everything.__module__)
    level = seed_log.level
    seed_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No seed found")
            yield
    finally:
        seed_log.setLevel(level)


class HookedLightningCLI(LightningCLI):
    """``LightningCLI`` with public hooks in place of its private steps.

    Hooks (all optional):
        preparing_subcommand: the subcommand whose parser is being built (``None`` outside), readable from
            ``add_arguments_to_parser``.
        subcommand_parser_built(parser, subcommand): after Lightning added a subcommand's options.
        model_and_data_instantiators(): ``[(instantiator, base class), ...]`` replacing Lightning's two.
        seeding_enabled(): ``False`` skips ``seed_everything`` (a parse-only use).
        seeding(seed): runs Lightning's seeding step ``seed()``; override to wrap it.
        checkpoint_hyperparameters_applied(): after Lightning replaced the model's init args with the
            hyperparameters ``--ckpt_path`` records (validate/test/predict), before anything is built.
        config_optimizer_applied(replaced): after the model was given a ``configure_optimizers`` built from
            the config's ``optimizer``/``lr_scheduler`` (LightningCLI's, made lazy: see the override);
            ``replaced`` when the model had its own. Lightning's warning about it is left to the hook.
        run_subcommand(subcommand): wraps Lightning's ``before_<sub>``/``<sub>``/``after_<sub>`` sequence,
            which ``run_lightning_subcommand`` performs.
    """

    preparing_subcommand: str | None = None

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        self.preparing_subcommand = subcommand
        try:
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        finally:
            self.preparing_subcommand = None
        self.subcommand_parser_built(parser, subcommand)
        return parser

    def subcommand_parser_built(self, parser: LightningArgumentParser, subcommand: str) -> None:
        """Called with each subcommand's finished parser."""

    def _add_instantiators(self) -> None:
        instantiators = self.model_and_data_instantiators()
        if instantiators is None:
            super()._add_instantiators()
            return
        for instantiator, base in instantiators:
            self.parser.add_instantiator(instantiator, base, subclasses=True)

    def model_and_data_instantiators(self) -> list[tuple[Any, type]] | None:
        """Instantiators for the model and datamodule classes (``None``: Lightning's own)."""
        return None

    def _set_seed(self) -> None:
        if self.seeding_enabled():
            self.seeding(super()._set_seed)

    def seeding_enabled(self) -> bool:
        return True

    def seeding(self, seed: Callable[[], None]) -> None:
        """Runs Lightning's seeding step (``seed_everything`` with the config's ``seed_everything``)."""
        seed()

    def _parse_ckpt_path(self) -> None:
        super()._parse_ckpt_path()
        self.checkpoint_hyperparameters_applied()

    def checkpoint_hyperparameters_applied(self) -> None:
        """Called once ``--ckpt_path``'s hyperparameters are in ``self.config``."""

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        # Lightning builds the optimizer here, once, from the parameters the model has now: a deep copy of
        # the model (litforge check) would step the original's, and layers made in configure_model() would
        # be left out. This configure_optimizers() builds them when it is called, from its own module.
        optimizer_init = self._get(self.config_init, "optimizer")
        lr_scheduler_init = self._get(self.config_init, "lr_scheduler")
        if not optimizer_init:  # (a scheduler alone is ignored, as LightningCLI does: the engine refuses it)
            return
        replaced = is_overridden("configure_optimizers", self.model)
        configure = partial(
            _configure_from_config,
            lightning_configure=self.configure_optimizers,
            optimizer_init=optimizer_init,
            lr_scheduler_init=lr_scheduler_init,
        )
        update_wrapper(configure, self.configure_optimizers)  # for Lightning's is_overridden
        self.model.configure_optimizers = MethodType(configure, self.model)
        self.config_optimizer_applied(replaced)

    def config_optimizer_applied(self, replaced: bool) -> None:
        """Called when the config's ``optimizer``/``lr_scheduler`` became the model's optimizers."""

    def _run_subcommand(self, subcommand: str) -> None:
        self.run_subcommand(subcommand)

    def run_subcommand(self, subcommand: str) -> None:
        """Run the subcommand (override to wrap it; call ``run_lightning_subcommand``)."""
        self.run_lightning_subcommand(subcommand)

    def run_lightning_subcommand(self, subcommand: str) -> None:
        super()._run_subcommand(subcommand)

    def config_value(self, config: Namespace, key: str, default: Any = None) -> Any:
        """``key`` of ``config``, inside the running subcommand's section when there is one."""
        return self._get(config, key, default)


def _configure_from_config(
    module: L.LightningModule,
    lightning_configure: Callable[..., Any],
    optimizer_init: dict[str, Any],
    lr_scheduler_init: dict[str, Any] | None,
) -> Any:
    """The config's optimizer over ``module``'s parameters and its scheduler, as LightningCLI returns them."""
    optimizer = instantiate_class(module.parameters(), optimizer_init)
    lr_scheduler = instantiate_class(optimizer, lr_scheduler_init) if lr_scheduler_init else None
    return lightning_configure(module, optimizer=optimizer, lr_scheduler=lr_scheduler)
