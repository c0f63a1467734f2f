"""Checks of what must stay the same: a seeded run, a checkpoint round-trip, a sample's output whatever
else is in its batch.

Each function returns a one-line detail on success and raises ``AssertionError`` naming what differs.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge._compat.torch_compile import uncompiled_state_dict
from litforge.errors import UsageError
from litforge.resilience.atomic_checkpoint_io import AtomicCheckpointIO
from litforge.testing.harness import StepRecorder, fit_on_batch
from litforge.testing.model_checks import eval_forward
from litforge.testing.subject import (
    DataLike,
    ModelLike,
    SkipCheck,
    Subject,
    as_subject,
    first_line,
    model_input,
    output_tensors,
    prepare_batch,
    shape_text,
)


def _seeded_run(subject: Subject, steps: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    module = subject.new_model()  # seeds

    recorder = StepRecorder(module)
    fit_on_batch(module, subject.batch, steps=steps, **subject.trainer_kwargs)
    return recorder.losses, {n: p.detach().cpu().clone() for n, p in module.named_parameters()}


def check_determinism(model: ModelLike | Subject, data: DataLike = None, *, steps: int = 3) -> str:
    """Two runs of ``steps`` training steps from the same seed give the same losses and parameters."""
    subject = as_subject(model, data)
    losses_a, params_a = _seeded_run(subject, steps)
    losses_b, params_b = _seeded_run(subject, steps)
    hint = (
        "unseeded randomness? (a private torch.Generator, numpy or random not seeded by seed_everything, "
        "nondeterministic kernels)"
    )
    for step, (a, b) in enumerate(zip(losses_a, losses_b, strict=False), start=1):
        if not (math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-8) or (math.isnan(a) and math.isnan(b))):
            raise AssertionError(
                f"seed {subject.seed} gave different losses at step {step}: {a:.6g} vs {b:.6g}; {hint}"
            )
    for name, a in params_a.items():
        if not torch.allclose(a, params_b[name], rtol=1e-6, atol=1e-8, equal_nan=True):
            diff = float((a - params_b[name]).abs().max())
            raise AssertionError(
                f"seed {subject.seed} gave different parameters after {steps} steps: {name} "
                f"(max abs diff {diff:.3g}); {hint}"
            )
    return f"{steps} steps twice from seed {subject.seed}: identical losses and parameters"


def check_checkpoint(model: ModelLike | Subject, data: DataLike = None) -> str:
    """After one step, ``load_from_checkpoint`` rebuilds the module with equal ``hparams`` and identical
    eval outputs on a real batch."""
    subject = as_subject(model, data)
    module = subject.new_model()
    cls = type(module)
    injected = _injected_arguments(module)
    _require_saved_hparams(module, injected)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = fit_on_batch(module, subject.batch, steps=1, default_root_dir=tmp, **subject.trainer_kwargs)
        path = Path(tmp) / "roundtrip.ckpt"
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()  # as a run saves: refuses what cannot load back
        try:
            trainer.save_checkpoint(path)
        except UsageError as error:
            raise AssertionError(str(error).replace(". Not saved: every", ": every")) from None
        if (
            injected
        ):  # rebuilt as litforge rebuilds it (the run's config.yaml), the weights from the checkpoint
            return _rebuilt_with_injected_arguments(subject, module, path, injected)
        try:
            loaded = cls.load_from_checkpoint(path, map_location=module.device)
        except Exception as error:
            raise AssertionError(
                f"{cls.__name__}.load_from_checkpoint failed: {type(error).__name__}: {error} "
                f"(saved hparams: {dict(module.hparams)})"
            ) from error
        saved_names = uncompiled_state_dict(module.state_dict()).keys()  # what the checkpoint holds
        unplaced = sorted(saved_names - uncompiled_state_dict(loaded.state_dict()).keys())
    if unplaced:  # under a submodule load_from_checkpoint leaves None: one setup() builds from the datamodule
        raise AssertionError(
            f"{cls.__name__}.load_from_checkpoint restores none of {len(unplaced)} tensor(s) (e.g. {unplaced[0]}): "
            "the layer holding them is not built by __init__ or configure_model() (built in setup()?); "
            "litforge's commands run setup() with the run's datamodule, load_from_checkpoint does not: pass its "
            "size as an init argument, or use an nn.LazyLinear"
        )
    saved, restored = _user_hparams(module), _user_hparams(loaded)
    # Every saved value must come back. A loaded module may record more (a subclass built by a config
    # saves the subclass's arguments; rebuilt directly, its parent's save_hyperparameters sees its own).
    differ = [k for k in sorted(saved) if saved[k] != restored.get(k, _MISSING)]
    if differ:
        changes = ", ".join(
            f"{k}: {saved.get(k, _MISSING)!r} -> {restored.get(k, _MISSING)!r}" for k in differ
        )
        raise AssertionError(f"hparams differ after load_from_checkpoint: {changes}")
    _check_same_eval_outputs(module, loaded.to(module.device), subject.batch)
    unsaved = _unsaved_arguments(module, injected)
    left_out = (
        f"; not saved: {', '.join(unsaved)} (load_from_checkpoint rebuilds {'it' if len(unsaved) == 1 else 'them'}"
        " with the default, whatever a run set)"
        if unsaved
        else ""
    )
    return f"equal hparams ({len(saved)} keys), identical eval outputs{left_out}"


def _check_same_eval_outputs(module: L.LightningModule, loaded: L.LightningModule, batch: Any) -> None:
    """The trained and the restored module give identical eval outputs on ONE input (an input built from a
    random ``example_input_array`` is drawn once: the restored module's own draw would differ)."""
    inputs = model_input(module, prepare_batch(module, batch)) if is_overridden("forward", module) else None
    original, _, _ = eval_forward(module, batch, inputs)
    restored, _, _ = eval_forward(loaded, batch, inputs)
    for i, (a, b) in enumerate(zip(output_tensors(original), output_tensors(restored), strict=False)):
        if a.shape != b.shape or not torch.allclose(a, b, rtol=0, atol=0, equal_nan=True):
            diff = float((a - b).abs().max()) if a.shape == b.shape else float("nan")
            raise AssertionError(
                f"eval output {i} differs after load_from_checkpoint (max abs diff {diff:.3g}): state outside "
                "state_dict? (a plain tensor attribute instead of a buffer, or randomness in eval mode)"
            )


def _injected_arguments(module: L.LightningModule) -> list[str]:
    """``__init__`` arguments that hold objects (``net: nn.Module``, ``optimizer: OptimizerCallable``) and are
    not in ``hparams`` (``save_hyperparameters(ignore=["net"])``, as Lightning advises for modules), for a
    module that LightningCLI built (``--model.net mymod.MLP``): ``load_from_checkpoint`` alone cannot
    rebuild those; the run's config.yaml does, and that is how litforge's commands rebuild the module."""
    if "_instantiator" not in module.hparams and module.hparams:
        return []
    saved = set(module.hparams)
    return [
        p.name
        for p in inspect.signature(type(module).__init__).parameters.values()
        if p.name != "self"
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in saved
        and _holds_objects(p.annotation)
    ]


def _holds_objects(annotation: Any) -> bool:
    """An annotation naming a ``torch.nn.Module`` class, or a callable (an optimizer/scheduler factory)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return any(
        word in text for word in ("Module", "Callable", "OptimizerCallable", "LRSchedulerCallable")
    ) or (isinstance(annotation, type) and issubclass(annotation, torch.nn.Module))


def _rebuilt_with_injected_arguments(
    subject: Subject, module: L.LightningModule, path: Path, injected: list[str]
) -> str:
    """A fresh module built as the subject builds it (for ``litforge check``: from the config), loading the
    checkpoint's weights strictly, gives the trained module's eval outputs."""
    checkpoint = torch.load(path, map_location=module.device, weights_only=True)
    rebuilt = subject.new_model(configure=True).to(module.device)
    try:
        rebuilt.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        raise AssertionError(
            f"the checkpoint's weights do not load into a rebuilt module: {first_line(error)}"
        ) from None
    _check_same_eval_outputs(module, rebuilt, subject.batch)
    return (
        f"rebuilt from the config (load_from_checkpoint alone lacks {', '.join(injected)}: not in hparams), "
        "weights loaded strictly, identical eval outputs"
    )


_MISSING = "<missing>"
# Bookkeeping LightningCLI adds to hparams and load_from_checkpoint consumes.
_CLI_KEYS = ("_class_path", "_instantiator")


def _user_hparams(module: L.LightningModule) -> dict[str, Any]:
    """``hparams`` without LightningCLI's bookkeeping: its ``_class_path``/``_instantiator`` keys, and values
    of data->model links that ``__init__`` does not take (Lightning records every applied link in hparams,
    even when the class has no such argument; load_from_checkpoint then drops them)."""
    params = inspect.signature(type(module).__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    from_cli = "_instantiator" in module.hparams
    return {
        k: v
        for k, v in module.hparams.items()
        if k not in _CLI_KEYS and (takes_any or not from_cli or k in params)
    }


def _plain_arguments(module: L.LightningModule, injected: list[str]) -> list[str]:
    """``__init__``'s named arguments, less the injected objects (``net: nn.Module``): its hyperparameters."""
    return [
        p.name
        for p in inspect.signature(type(module).__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in injected
    ]


def _unsaved_arguments(module: L.LightningModule, injected: list[str]) -> list[str]:
    """Hyperparameters a partial ``save_hyperparameters("lr")`` leaves out of ``hparams``: arguments with a
    number, string or bool default (one defaulting to ``None``, such as statistics kept in buffers, is not)."""
    parameters = inspect.signature(type(module).__init__).parameters
    return [
        name
        for name in _plain_arguments(module, injected)
        if name not in module.hparams and isinstance(parameters[name].default, int | float | str | bool)
    ]


def _require_saved_hparams(module: L.LightningModule, injected: list[str]) -> None:
    """``__init__`` arguments but empty ``hparams``: ``load_from_checkpoint`` would rebuild the defaults.
    Injected objects (``net: nn.Module``) are not hyperparameters: they are left out of this rule."""
    params = _plain_arguments(module, injected)
    if params and not module.hparams:
        raise AssertionError(
            f"hparams is empty but {type(module).__name__}.__init__ takes ({', '.join(params)}): call "
            "self.save_hyperparameters() so load_from_checkpoint rebuilds the module with the same arguments"
        )


def check_batch_independence(model: ModelLike | Subject, data: DataLike = None) -> str:
    """In eval mode a sample's output does not depend on the rest of its batch (catches BatchNorm left in
    training mode and statistics taken over the batch dimension)."""
    subject = as_subject(model, data)
    module = subject.new_model(configure=True)
    full, size, described = eval_forward(module, subject.batch)
    if size is None:
        raise SkipCheck(
            f"forward takes packed inputs ({described}) that share no batch axis 0: the batch cannot be split "
            "into samples"
        )
    if size < 2:
        raise SkipCheck("the first batch has a single sample")
    inputs = model_input(module, prepare_batch(module, subject.batch))
    half = size // 2
    variants = (
        (f"in a batch of {half}", lambda t: t[:half], lambda t: t[:half]),
        ("alone", lambda t: t[:1], lambda t: t[:1]),
        ("in reversed order", lambda t: t.flip(0), lambda t: t.flip(0)),
    )
    leak = "forward mixes samples (BatchNorm in training mode, a mean/std over the batch dimension, ...)"
    for label, pick_input, pick_expected in variants:
        args, kwargs = _map_batched(pick_input, inputs, size)
        try:
            with torch.no_grad():
                got = output_tensors(module(*args, **kwargs))
        except Exception as error:
            raise AssertionError(
                f"eval forward fails for samples {label}: {type(error).__name__}: {first_line(error)}; {leak}"
            ) from error
        for i, (a, b) in enumerate(zip(output_tensors(full), got, strict=False)):
            if a.ndim == 0 or a.shape[0] != size:
                continue
            expected = pick_expected(a)
            if expected.shape != b.shape and label == "alone" and b.shape == expected.shape[1:]:
                raise AssertionError(
                    f"eval output {i} is {shape_text(a)} for {size} samples but {shape_text(b)} for one alone: "
                    "forward drops the batch dimension of a batch of 1 (a squeeze() without a dim: squeeze the "
                    "dimension you mean, e.g. .squeeze(-1))"
                )
            if expected.shape != b.shape or not torch.allclose(
                expected, b, rtol=1e-4, atol=1e-5, equal_nan=True
            ):
                diff = float((expected - b).abs().max()) if expected.shape == b.shape else float("nan")
                raise AssertionError(
                    f"eval output {i} {shape_text(a)} changes for the same samples {label} "
                    f"(max abs diff {diff:.3g}): {leak}"
                )
    return f"{size} samples: same outputs in a batch of {half}, alone and in reversed order"


def _map_batched(fn: Any, inputs: Any, size: int) -> Any:
    """Apply ``fn`` to every tensor whose first dimension is the batch size."""
    from litforge._compat.torch import tree_map

    return tree_map(
        lambda t: fn(t) if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == size else t, inputs
    )
