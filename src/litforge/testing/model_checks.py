"""Checks of one training step: forward on a real batch, the loss, gradient flow, the optimizer step,
overfitting one batch and a ``fast_dev_run`` of the real loops.

Each function takes a module (or factory) and its data, returns a one-line detail when the check passes
and raises ``AssertionError`` naming what is wrong when it fails (``SkipCheck`` when it does not apply).
"""

from __future__ import annotations

import inspect
import math
import tempfile
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge.predictions.batch_tensors import packed_inputs
from litforge.predictions.forward_inputs import forward_inputs_from_batch
from litforge.testing.harness import (
    GradientProbe,
    StepRecorder,
    fit_on_batch,
    step_loss,
    tiny_trainer,
)
from litforge.testing.subject import (
    DataLike,
    ModelLike,
    SkipCheck,
    Subject,
    as_subject,
    batch_size_of,
    first_line,
    input_from_example,
    model_input,
    name_list,
    output_tensors,
    prepare_batch,
    seeded,
    shape_text,
)


def eval_forward(
    model: L.LightningModule, batch: Any, inputs: tuple[tuple[Any, ...], dict[str, Any]] | None = None
) -> tuple[Any, int | None, str]:
    """Run ``forward`` in eval mode without grad on a real batch -> (output, batch size, input description);
    the size is None for packed inputs that share no batch axis (``batch_tensors.packed_inputs``).
    ``inputs``: forward's ``(args, kwargs)`` already drawn (two modules compared on one input)."""
    if not is_overridden("forward", model):
        raise SkipCheck("the module does not define forward")
    model.eval()
    args, kwargs = inputs if inputs is not None else model_input(model, prepare_batch(model, batch))
    with torch.no_grad():
        output = model(*args, **kwargs)
    if packed := packed_inputs(model, args, kwargs):
        return output, None, packed
    inputs = [shape_text(t) for t in output_tensors((args, kwargs))]
    return output, batch_size_of(args, kwargs), ", ".join(inputs)


def check_forward(model: ModelLike | Subject, data: DataLike = None) -> str:
    """``forward`` on a real batch (eval mode) returns finite tensors with the batch size first, in the
    parameters' dtype, ``num_classes`` wide for a classifier, and agrees with ``example_input_array``."""
    subject = as_subject(model, data)
    module = subject.new_model(configure=True)
    from_example = input_from_example(module, subject.batch)
    try:
        output, size, inputs = eval_forward(module, subject.batch)
    except SkipCheck:
        raise
    except Exception as error:
        if not from_example:
            raise
        raise AssertionError(
            f"forward fails on inputs shaped like example_input_array "
            f"({', '.join(shape_text(t) for t in output_tensors(module.example_input_array))}), which differs "
            f"from the data's input: a stale example_input_array? {type(error).__name__}: {first_line(error)}"
        ) from error
    tensors = output_tensors(output)
    if not tensors:
        raise AssertionError(f"forward returned {type(output).__name__}, which holds no tensor")
    param_dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
    for i, out in enumerate(tensors):
        where = (
            f"forward output {i} {shape_text(out)}"
            if len(tensors) > 1
            else f"forward output {shape_text(out)}"
        )
        if size is not None and (out.ndim == 0 or out.shape[0] != size):
            raise AssertionError(
                f"{where}: the first dimension should be the batch size {size} (input {inputs})"
            )
        if out.is_floating_point():
            bad = int((~torch.isfinite(out)).sum())
            if bad:
                nans = int(torch.isnan(out).sum())
                raise AssertionError(
                    f"{where} has {nans} NaN and {bad - nans} inf of {out.numel()} values on a real batch "
                    f"(input {inputs})"
                )
            if param_dtype is not None and out.dtype != param_dtype:
                raise AssertionError(
                    f"{where}: dtype differs from the parameters' {param_dtype} (a float64 constant or numpy "
                    "array in forward?)"
                )
    first = tensors[0]
    classes = _declared_num_classes(module)
    if classes is not None and first.ndim == 2 and first.shape[1] != classes:
        raise AssertionError(f"forward output {shape_text(first)}: expected {classes} columns (num_classes)")
    if from_example:
        _check_example_is_not_stale(module, subject.batch)
        return f"{inputs} (shaped like example_input_array) -> {', '.join(shape_text(t) for t in tensors)}"
    _check_example_input(module, model_input(module, prepare_batch(module, subject.batch)), first)
    packed = " (packed inputs: no shared batch axis)" if size is None else ""
    return f"{inputs}{packed} -> {', '.join(shape_text(t) for t in tensors)}"


def _check_example_is_not_stale(module: L.LightningModule, batch: Any) -> None:
    """``example_input_array`` with other rows than the data, although ``forward`` takes the data's rows:
    the export would be built for inputs the data does not have."""
    from litforge.export.spec import export_spec, stale_inputs

    if callable(getattr(module, "litforge_export_spec", None)):
        return  # the export spec declares its inputs and their dynamic axes, as export reads them
    example = module.example_input_array
    examples = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    data_input = forward_inputs_from_batch(module, prepare_batch(module, batch))
    tensors = tuple([*data_input[0], *data_input[1].values()]) if data_input else ()
    if len(tensors) != len(examples) or not all(isinstance(t, torch.Tensor) for t in (*examples, *tensors)):
        return
    names = export_spec(module).input_names if len(examples) > 1 else ["input"]
    if stale := stale_inputs(module.eval(), examples, tensors, names):
        raise AssertionError(
            f"a stale example_input_array: {'; '.join(stale)}, and forward runs on the data's (export would "
            "take only its sizes; an axis whose length varies is declared in litforge_export_spec())"
        )


def _declared_num_classes(module: L.LightningModule) -> int | None:
    """``num_classes`` when ``__init__`` takes it (a classifier) and hparams record it."""
    takes = "num_classes" in inspect.signature(type(module).__init__).parameters
    value = module.hparams.get("num_classes") if takes else None
    return value if isinstance(value, int) else None


def _check_example_input(module: L.LightningModule, real_input: Any, real_output: torch.Tensor) -> None:
    """``example_input_array`` (used by export and the model summary) gives outputs of the real rank and, when
    its inputs have the real per-sample shapes, the real per-sample shape: forward must not depend on the
    batch size (the batch dimension itself, e.g. the only one of a regression's ``(B,)``, may differ)."""
    example = module.example_input_array
    if example is None:
        return
    example = prepare_batch(module, example)
    with torch.no_grad():
        out = module(**example) if isinstance(example, dict) else module(*_as_args(example))
    tensors = output_tensors(out)
    if not tensors:
        return
    same_inputs = _per_sample_shapes(example) == _per_sample_shapes(real_input)
    if tensors[0].ndim != real_output.ndim or (same_inputs and tensors[0].shape[1:] != real_output.shape[1:]):
        raise AssertionError(
            f"forward gives {shape_text(tensors[0])} on example_input_array but {shape_text(real_output)} "
            "on a real batch: the output's shape must not depend on the batch size (a .squeeze() without a "
            "dim drops the batch dimension of a batch of 1: squeeze the dimension you mean, e.g. .squeeze(-1))"
        )


def _per_sample_shapes(inputs: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape[1:]) for t in output_tensors(inputs)]


def _as_args(example: Any) -> tuple[Any, ...]:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _assert_loss(output: Any, manual: bool) -> None:
    """Vet one raw ``training_step`` output (raised inside the step, before Lightning's backward)."""
    loss = step_loss(output)
    if loss is None:
        if manual:
            return
        if isinstance(output, dict):
            raise AssertionError(
                f"training_step returned a dict without a 'loss' key (keys: {', '.join(output)})"
            )
        raise AssertionError(
            "training_step returned None: return the loss tensor (or a dict with 'loss'); Lightning skips "
            "the optimizer step on None"
        )
    if not isinstance(loss, torch.Tensor):
        raise AssertionError(f"training_step returned a {type(loss).__name__}, expected a loss tensor")
    if loss.ndim != 0:
        raise AssertionError(
            f"training_step loss has shape {tuple(loss.shape)}, expected a scalar (shape ()): reduce it, "
            "e.g. with .mean()"
        )
    if not loss.is_floating_point():
        raise AssertionError(f"training_step loss has dtype {loss.dtype}, expected a floating-point tensor")
    if not torch.isfinite(loss):
        raise AssertionError(f"training_step loss is {float(loss.detach())} on the first batch")
    if not manual and not loss.requires_grad:
        raise AssertionError(
            "training_step loss does not require grad: it is cut off from the parameters (.detach(), "
            ".item(), torch.no_grad() or a new tensor built from numbers)"
        )


def check_training_step(model: ModelLike | Subject, data: DataLike = None) -> str:
    """``training_step`` on a real batch returns a finite scalar floating loss that requires grad
    (manual optimization: a returned loss must be finite and scalar; ``None`` is allowed)."""
    subject = as_subject(model, data)
    module = subject.new_model()
    manual = not module.automatic_optimization
    recorder = StepRecorder(module, inspect=lambda output: _assert_loss(output, manual))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit_on_batch(module, subject.batch, steps=1, **subject.trainer_kwargs)
        except Exception as error:
            if recorder.error is not error or isinstance(error, AssertionError):
                raise
            raise AssertionError(
                f"training_step raised {type(error).__name__}: {first_line(error)}"
            ) from error
    _refuse_a_broadcast_loss(caught)
    if recorder.calls == 0:
        raise AssertionError("training_step was never called on the first batch")
    if recorder.idle_in_training:
        raise AssertionError(
            f"{', '.join(recorder.idle_in_training)} in eval mode during training_step while its parameters "
            "train: dropout and BatchNorm are off (from_pretrained returns eval mode; call .train() on it in "
            "__init__ or on_train_start)"
        )
    if not recorder.losses:
        return "manual optimization: training_step returned no loss"
    return f"loss {recorder.losses[0]:.4g}" + (" (manual optimization)" if manual else ", requires grad")


def _refuse_a_broadcast_loss(caught: list[warnings.WarningMessage]) -> None:
    """torch's warning that a loss (``mse_loss``, ``l1_loss``, ...) broadcast an output of (N, 1) against a
    target of (N,): an (N, N) difference, a loss that trains towards the targets' mean. A warning in a log
    is easy to miss; here it fails the check."""
    for warning in caught:
        text = str(warning.message)
        if "that is different to the input size" in text:
            raise AssertionError(
                f"the loss broadcasts its inputs: {text.split('. ')[0]}; squeeze the output "
                "(output.squeeze(-1)) or shape the target like it"
            )


def _one_step(subject: Subject) -> tuple[L.LightningModule, GradientProbe]:
    module = subject.new_model()
    probe, recorder = GradientProbe(), StepRecorder(module)
    fit_on_batch(module, subject.batch, steps=1, callbacks=[probe], **subject.trainer_kwargs)
    if module.automatic_optimization and recorder.calls and not recorder.losses:
        # Lightning still calls the optimizer, with no gradients: the training_step check says why
        raise SkipCheck(
            "training_step returned None on the first batch (a skipped batch): no step to examine"
        )
    if probe.optimizer_steps == 0:
        raise AssertionError(
            "no optimizer step ran on the first batch (training_step returned None, or manual optimization "
            "never called optimizer.step())"
        )
    return module, probe


def check_gradients(model: ModelLike | Subject, data: DataLike = None) -> str:
    """Every trainable parameter gets a non-zero gradient in one step and belongs to an optimizer."""
    module, probe = _one_step(as_subject(model, data))
    averaged = _averaged_copies(module)  # an EMA/SWA copy follows the weights by averaging, not gradients
    trainable = [name for name in probe.before if name not in averaged]
    problems = []
    no_grad = [n for n in trainable if n not in probe.with_grad]
    zero = [n for n in trainable if n in probe.with_grad and n not in probe.nonzero_grad]
    orphans = [n for n in trainable if n not in probe.in_optimizer]
    nonfinite = [n for n in trainable if n in probe.nonfinite_grad]
    if no_grad:
        pooler = any(".pooler." in name for name in no_grad)  # AutoModel's pooler, unused by a pooling head
        hint = (
            " (a Hugging Face pooler: AutoModel.from_pretrained(..., add_pooling_layer=False))"
            if pooler
            else ""
        )
        problems.append(f"no gradient (not used in the loss?): {name_list(no_grad)}{hint}")
    if zero:
        problems.append(f"an all-zero gradient: {name_list(zero)}")
    if nonfinite:
        problems.append(f"a NaN or infinite gradient: {name_list(nonfinite)}")
    if orphans:
        problems.append(f"not in any optimizer from configure_optimizers: {name_list(orphans)}")
    if problems:
        bad = len(set(no_grad) | set(zero) | set(nonfinite) | set(orphans))
        raise AssertionError(f"{bad} of {len(trainable)} trainable parameters: " + "; ".join(problems))
    copies = f" ({len(averaged)} of AveragedModel copies left out)" if averaged else ""
    return f"all {len(trainable)} trainable parameters get a non-zero gradient{copies}"


def _averaged_copies(module: torch.nn.Module) -> set[str]:
    """Names of the parameters inside ``torch.optim.swa_utils.AveragedModel`` submodules."""
    from torch.optim.swa_utils import AveragedModel

    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, child in module.named_modules()
        if isinstance(child, AveragedModel)
        for name, _ in child.named_parameters()
    }


def check_optimizer_step(model: ModelLike | Subject, data: DataLike = None) -> str:
    """One optimizer step changes every trainable parameter."""
    module, probe = _one_step(as_subject(model, data))
    before = probe.before
    after = probe.after or {n: p.detach() for n, p in module.named_parameters()}
    present = [n for n in before if n in after]  # a layer replaced during the step has new names
    unchanged = [n for n in present if torch.equal(before[n], after[n].to(before[n].device))]
    # no gradient, no step: the gradients check names those (an unused Hugging Face pooler, say)
    without_gradient = [n for n in unchanged if n not in probe.with_grad]
    stuck = [n for n in unchanged if n in probe.with_grad]
    if stuck:
        raise AssertionError(
            f"{len(stuck)} of {len(before)} trainable parameters unchanged after one optimizer step although "
            f"they got a gradient: {name_list(stuck)} (missing from the optimizer? learning rate 0?)"
        )
    if without_gradient:
        raise AssertionError(
            f"{len(without_gradient)} of {len(before)} trainable parameters unchanged after one optimizer step: "
            f"{name_list(without_gradient)}, which got no gradient (see the gradients check)"
        )
    broken = [n for n in present if not bool(after[n].detach().isfinite().all())]
    if broken:
        raise AssertionError(
            f"{len(broken)} of {len(before)} trainable parameters hold NaN or infinite values after one "
            f"optimizer step: {name_list(broken)}"
        )
    return f"all {len(before)} trainable parameters changed"


OVERFIT_STEPS, OVERFIT_THRESHOLD = 1000, 0.01
# ... or end the steps below this fraction of its first value: a small model with a modest learning rate
# (a linear layer, SGD lr=0.05) memorises one batch slowly, 0.9 -> 0.05 in 1000 steps and still falling,
# and is healthy. The last value counts, not the best: a loss that fell, then rose again, fails.
OVERFIT_FRACTION = 0.1


def check_overfit(
    model: ModelLike | Subject,
    data: DataLike = None,
    *,
    steps: int = OVERFIT_STEPS,
    threshold: float = OVERFIT_THRESHOLD,
) -> str:
    """Training on one batch, with the module's own ``configure_optimizers``, brings the loss below
    ``threshold`` within ``steps`` steps (it stops as soon as it does), or ends them below a tenth of
    its first value."""
    subject = as_subject(model, data)
    module = subject.new_model()
    recorder = StepRecorder(module, stop_below=threshold)
    trainer = fit_on_batch(module, subject.batch, steps=steps, **subject.trainer_kwargs)
    losses = recorder.losses
    if not losses:
        raise SkipCheck("training_step returns no loss to follow (manual optimization)")
    reached = next((i for i, value in enumerate(losses) if value < threshold), None)
    if reached is None and losses[0] > 0 and losses[-1] < OVERFIT_FRACTION * losses[0]:
        return (
            f"loss {losses[0]:.3g} -> {losses[-1]:.3g} ({losses[-1] / losses[0]:.1%} of its first value) "
            f"in {len(losses)} steps"
        )
    if reached is None:
        finite = [i for i, value in enumerate(losses) if math.isfinite(value)]
        best = min(finite, key=losses.__getitem__, default=0)
        raise AssertionError(
            f"loss did not fall below {threshold} in {len(losses)} steps on one batch with "
            f"{_optimizers_text(trainer)}: first {losses[0]:.4g}, best {losses[best]:.4g} at step {best + 1}, "
            f"last {losses[-1]:.4g}; {_decayed_rate_advice(trainer, len(losses)) or _overfit_advice(losses, best, threshold)}"
        )
    return f"loss {losses[0]:.3g} -> {_shown_below(losses[reached], threshold)} < {threshold} at step {reached + 1}"


def _shown_below(value: float, threshold: float) -> str:
    """``value`` with as many digits as it takes to read as below ``threshold`` (0.009996, not 0.01)."""
    for digits in (3, 4, 5, 6, 8):
        if float(text := f"{value:.{digits}g}") < threshold:
            return text
    return repr(value)


def _optimizers_text(trainer: L.Trainer) -> str:
    """``Adam lr=0.001``: the optimizers ``configure_optimizers`` returned, with their starting rates."""
    described = []
    for optimizer in trainer.optimizers:
        group = optimizer.param_groups[0]
        described.append(f"{type(optimizer).__name__} lr={group.get('initial_lr', group['lr']):.3g}")
    return ", ".join(described)


def _decayed_rate_advice(trainer: L.Trainer, steps: int) -> str | None:
    """A scheduler that took the learning rate (nearly) to 0 by the last step: the loss stopped because the
    rate did, not the model (a warmup/decay schedule sized by ``estimated_stepping_batches`` ends with the
    check's steps). ``None`` when every rate is still above a hundredth of its start."""
    for optimizer in trainer.optimizers:
        group = optimizer.param_groups[0]
        start, end = group.get("initial_lr", group["lr"]), group["lr"]
        if start > 0 and end < 0.01 * start:
            more = 2 * steps
            return (
                f"its LR scheduler took the learning rate from {start:.3g} to {end:.3g} by the last step: "
                f"allow more steps (steps={more}, litforge check --overfit-steps {more}), as the schedule "
                "spans the steps it is given"
            )
    return None


def _overfit_advice(losses: list[float], best: int, threshold: float) -> str:
    """What to do about a loss that did not reach ``threshold``, from the shape of its curve."""
    first, lowest, last = losses[0], losses[best], losses[-1]
    if not math.isfinite(last):
        return "it diverged: lower the learning rate, or look for a log/division of values that reach 0"
    if last > 2 * first:
        return f"it grew from {first:.3g} to {last:.3g}: lower the learning rate"
    if lowest > 0.9 * first:
        return (
            "it hardly moved: check that the learning rate is not 0 or tiny and that the loss compares the "
            "model's outputs with the batch's targets"
        )
    if last - lowest > (first - lowest) / 2:
        return f"it fell to {lowest:.3g}, then rose again: lower the learning rate"
    if best >= 0.9 * len(losses) and _still_falling(losses):
        more = 2 * len(losses)
        return (
            f"it was still falling: allow more steps (steps={more}, litforge check --overfit-steps {more}), or "
            "raise the learning rate"
        )
    return (
        f"it levelled off at {lowest:.3g}: check that the model can fit these targets (output size, "
        f"activation, loss function); a loss with a floor above {threshold} (label smoothing, a KL or penalty "
        "term, a summed loss on soft targets) needs a higher threshold (threshold=..., litforge check "
        f"--overfit-threshold {_above(lowest)})"
    )


def _still_falling(losses: list[float]) -> bool:
    """Whether the last fifth of the steps still took a real share (5 %) of the whole drop off the loss: a
    curve that creeps along its floor (a VAE's summed loss, 45 -> 22.6 -> 22.3) has levelled off, however
    late its best step; a loss decaying at a steady rate has not."""
    tail = max(len(losses) // 5, 1)
    earlier, recent = min(losses[:-tail], default=losses[0]), min(losses[-tail:])
    return earlier - recent > 0.05 * (losses[0] - recent)


def _above(value: float) -> str:
    """A round threshold a little above ``value`` (22.3 -> 25, 0.61 -> 0.7)."""
    scale = 10 ** math.floor(math.log10(value)) if value > 0 else 1.0
    return f"{math.ceil(value * 1.1 / (scale / 2)) * (scale / 2):g}"


def check_fast_dev_run(model: ModelLike | Subject, data: DataLike = None) -> str:
    """``Trainer(fast_dev_run=True)`` runs one batch of the module's real train/val (and test) loops."""
    subject = as_subject(model, data)
    _ = subject.first_batches  # drawn before the Trainer below runs the datamodule's setup again
    module = subject.new_model()
    loaders = subject.loaders()
    with tempfile.TemporaryDirectory() as tmp:
        # logger=True: under fast_dev_run Lightning puts its DummyLogger there, as a plain
        # Trainer(fast_dev_run=True) does, so a module writing to self.logger.experiment runs
        settings = {"fast_dev_run": True, "default_root_dir": tmp, "logger": True, **subject.trainer_kwargs}
        trainer = tiny_trainer(**settings)
        if subject.datamodule is not None:
            trainer.fit(module, datamodule=subject.datamodule)
        else:
            trainer.fit(module, train_dataloaders=loaders["train"], val_dataloaders=loaders.get("val"))
        ran = ["train"] + (["val"] if is_overridden("validation_step", module) and "val" in loaders else [])
        dm = subject.datamodule
        if is_overridden("test_step", module) and dm is not None and is_overridden("test_dataloader", dm):
            trainer.test(module, datamodule=dm, verbose=False)
            ran.append("test")
    if dm is not None:  # the Trainer ran setup() again: a random_split there re-split the data for the
        with seeded(subject.seed):  # checks after this one; split it as the subject first did
            dm.setup("fit")
    return f"one batch each of {', '.join(ran)}"
