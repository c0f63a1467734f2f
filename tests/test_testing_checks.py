"""litforge.testing: each check fails a deliberately broken module with a message naming the problem,
and passes a correct one (tests/broken_modules.py)."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import broken_modules as broken
from litforge.testing import (
    SkipCheck,
    Subject,
    check_batch_independence,
    check_checkpoint,
    check_data,
    check_determinism,
    check_export,
    check_forward,
    check_gradients,
    check_optimizer_step,
    check_overfit,
    check_training_step,
    run_checks,
    select_checks,
)

BROKEN = [
    # (check, broken module, data, the message must match)
    (check_training_step, broken.NonScalarLoss, broken.TinyData, r"loss has shape \(16,\), expected a scalar"),
    (check_training_step, broken.DetachedLoss, broken.TinyData, r"loss does not require grad"),
    (check_training_step, broken.BroadcastLoss, broken.TinyData, r"^the loss broadcasts its inputs: Using a target size \(torch\.Size\(\[16\]\)\) that is different to the input size \(torch\.Size\(\[16, 1\]\)\); squeeze the output"),
    (check_training_step, broken.NaNOutput, broken.TinyData, r"loss is nan on the first batch"),
    (check_training_step, broken.PretrainedBodyInEvalMode, broken.TinyData, r"^self\.body \(1 Dropout/BatchNorm layers\) in eval mode during training_step while its parameters train"),
    (check_gradients, broken.UnusedLayer, broken.TinyData, r"2 of 6 .*no gradient .*projection\.weight, projection\.bias"),
    (check_gradients, broken.NotInOptimizer, broken.TinyData, r"not in any optimizer .*body\.0\.weight, body\.0\.bias"),
    (check_optimizer_step, broken.CannotLearn, broken.TinyData, r"4 of 4 trainable parameters unchanged"),
    (check_optimizer_step, broken.NotInOptimizer, broken.TinyData, r"^2 of 4 trainable parameters unchanged after one optimizer step although they got a gradient: body\.0\.weight, body\.0\.bias \(missing from the optimizer"),
    (check_optimizer_step, broken.UnusedLayer, broken.TinyData, r"^2 of 6 trainable parameters unchanged after one optimizer step: projection\.weight, projection\.bias, which got no gradient \(see the gradients check\)"),
    (check_gradients, broken.NaNGradient, broken.TinyData, r"2 of 4 trainable parameters: a NaN or infinite gradient: body\.0\.weight, body\.0\.bias"),
    (check_optimizer_step, broken.NaNGradient, broken.TinyData, r"2 of 4 trainable parameters hold NaN or infinite values after one optimizer step: body\.0\.weight"),
    (check_forward, broken.NaNOutput, broken.TinyData, r"forward output \(16, 3\) float32 has \d+ NaN"),
    (check_forward, broken.StaleExampleInput, broken.TinyData, r"inputs shaped like example_input_array \(\(2, 5\) float32\).*stale"),
    (check_forward, broken.SqueezeDropsBatch, broken.TinyData, r"gives \(3,\) float32 on example_input_array but \(16, 3\) float32 on a real batch: .*\.squeeze\(-1\)"),
    (check_determinism, broken.UnseededDropout, broken.TinyData, r"seed 0 gave different losses at step 1"),
    (check_batch_independence, broken.SqueezeWithAnExampleOfTwo, broken.TinyData, r"eval output 0 is \(16, 3\) float32 for 16 samples but \(3,\) float32 for one alone: forward drops the batch dimension of a batch of 1 \(a squeeze\(\) without a dim"),
    (check_batch_independence, broken.BatchMeanLeak, broken.TinyData, r"changes for the same samples in a batch of 8"),
    (check_batch_independence, broken.BatchNormAlwaysTraining, broken.TinyData, r"in a batch of 8 .*BatchNorm"),
    (check_checkpoint, broken.HparamsNotSaved, broken.TinyData, r"hparams is empty but HparamsNotSaved.__init__ takes \(hidden, lr\)"),
    (check_checkpoint, broken.StateOutsideStateDict, broken.TinyData, r"eval output 0 differs after load_from_checkpoint"),
    (check_checkpoint, broken.SavesAnObject, broken.TinyData, r"the checkpoint holds tokenizer \(broken_modules\.SimpleTokenizer\): objects litforge cannot load back"),
    (check_data, broken.TinyNet, broken.WrongLabelData, r"train batch 0: labels span \[1, 3\], expected 0\.\.2 \(num_classes=3\)"),
    (check_export, broken.StaleExampleInput, broken.TinyData, r"litforge export refuses it: StaleExampleInput\.example_input_array has rows of shape \(5,\)"),
    (check_export, broken.DataDependentBranch, broken.TinyData, r"torch\.onnx\.export failed: TorchExportError"),
    (check_export, broken.DictOutput, broken.TinyData, r"litforge export refuses it: DictOutput\.forward\(\)'s output 'mean' has shape \(\)"),
    (check_forward, broken.StaleSequenceExample, broken.PaddedSequenceData, r"a stale example_input_array: x has rows of shape \(5, 8\) in example_input_array but \(12, 8\) in the data, and forward runs on the data's"),
    (check_export, broken.StaleSequenceExample, broken.PaddedSequenceData, r"litforge export refuses it: StaleSequenceExample\.example_input_array: x has rows of shape \(5, 8\)"),
    # a dict batch {"image", "mask"} and forward(self, x): the image is the input, the mask the labels
    (check_forward, broken.StaleSegExample, broken.TinySegData, r"a stale example_input_array: input has rows of shape \(1, 12, 12\) in example_input_array but \(1, 8, 8\) in the data"),
    (check_export, broken.StaleSegExample, broken.TinySegData, r"litforge export refuses it: StaleSegExample\.example_input_array has rows of shape \(1, 12, 12\)"),
    (check_data, broken.BatchNormNet, broken.OneSampleTailData, r"^the training loader's last batch holds 1 sample \(64 samples in batches of 63\), and forward in training mode fails on one sample \(Expected more than 1 value per channel"),
    (check_data, broken.TinyNet, broken.IntegerTargetsData, r"labels span \[-1, 1\], expected >= 0 \(if they are a regression's targets, make them float: y\.float\(\)\)"),
    (check_data, broken.TinyNet, broken.Float64Data, r"^train batch 0: batch\[0\] is float64 but the model's parameters are float32: convert it in the dataset"),
    (check_data, broken.TinySegNet, broken.OneBasedMaskData, r"train batch 0: labels span \[1, 3\], expected 0\.\.2 \(num_classes=3\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "model", "data", "message"),
    BROKEN,
    ids=[f"{check.__name__}-{model.__name__}" for check, model, *_ in BROKEN],
)
def test_broken_module_fails_with_a_precise_message(check, model, data, message):
    with pytest.raises(AssertionError, match=message):
        check(model, data)


class SmoothedLabels(broken.TinyNet):
    """Healthy, but label smoothing puts a floor under the loss, far above the default threshold."""

    def loss(self, logits, y):
        return F.cross_entropy(logits, y, label_smoothing=0.3)


class GrowsFinitely(broken.TinyNet):
    """An objective with a sharp curvature and SGD too fast for it: the loss grows, step by step, still finite
    (it read as "it hardly moved: check that the learning rate is not 0 or tiny", the opposite fix)."""

    def loss(self, logits, y):
        return (logits**2).mean() * 10

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.3)


class CreepsAlongAFloor(broken.TinyNet):
    """Healthy, but its loss has a floor of 2 (a VAE's summed loss on soft targets): it creeps towards it, so
    its best step is its last, yet more steps would not help."""

    def loss(self, logits, y):
        return F.cross_entropy(logits, y) + 2.0


OVERFIT_FAILURES = [
    # (model, steps, what the message says after "did not fall below 0.01 in <steps> steps on one batch")
    (broken.CannotLearn, 15, r"with SGD lr=0: first \d\.\d+, best .*; it hardly moved: check that the learning rate"),
    (lambda: broken.TinyNet(lr=0.005), 15, r"with Adam lr=0\.005: .*; it was still falling: allow more steps \(steps=30, litforge check --overfit-steps 30\)"),
    (lambda: broken.TinyNet(lr=1.0), 15, r"with Adam lr=1: .*; it fell to 0\.019, then rose again: lower the learning rate"),
    (broken.Diverges, 5, r"with SGD lr=1e\+06: .* last nan; it diverged: lower the learning rate"),
    (GrowsFinitely, 4, r"with SGD lr=0\.3: first 1\.501, best 1\.501 at step 1, last \d+\.?\d*; it grew from 1\.5 to \d+\.?\d*: lower the learning rate"),
    (SmoothedLabels, 100, r"with Adam lr=0\.05: .*; it levelled off at 0\.6.*needs a higher threshold"),
    (CreepsAlongAFloor, 100, r"with Adam lr=0\.05: .*; it levelled off at 2(\.0+)?: .*--overfit-threshold 2\.5\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "steps", "advice"),
    OVERFIT_FAILURES,
    ids=[
        "lr-0",
        "too-few-steps",
        "lr-too-high",
        "diverges",
        "grows",
        "loss-with-a-floor",
        "creeping-to-a-floor",
    ],
)
def test_overfit_failure_names_the_modules_optimizer_and_says_what_to_do(model, steps, advice):
    with pytest.raises(
        AssertionError, match=rf"did not fall below 0\.01 in {steps} steps on one batch {advice}"
    ):
        check_overfit(model, broken.TinyData, steps=steps)


def test_a_slow_but_healthy_learner_passes_overfit_when_its_loss_ends_below_a_tenth():
    """A linear model with SGD memorises one batch slowly (0.9 -> 0.05 in 1000 steps, still falling): healthy,
    yet it failed the absolute 0.01 bar."""
    detail = check_overfit(broken.TinyNet, broken.TinyData, steps=12)
    assert re.fullmatch(r"loss 1\.16 -> 0\.1\d+ \(\d\.\d% of its first value\) in 12 steps", detail), detail


def test_correct_module_passes_every_check():
    results = run_checks(broken.TinyNet, broken.TinyData, skip=["export"])
    assert {r.name: r.status for r in results} == {c.name: "PASS" for c in select_checks(skip=["export"])}
    detail = {r.name: r.detail for r in results}
    assert "labels in [0, 2] of 3 classes" in detail["data"]
    # the class balance of the training batches read, before any training
    assert re.search(r"training batches read: class 0 \d+%, 1 \d+%, 2 \d+%$", detail["data"])
    assert re.search(r"< 0\.01 at step \d+", detail["overfit"])


def test_a_frozen_backbone_in_eval_mode_is_deliberate_and_passes():
    assert check_training_step(broken.FrozenBodyInEvalMode, broken.TinyData).startswith("loss ")


def test_export_parity_passes_on_a_correct_module():
    assert "matches eager on 2 batch(es)" in check_export(broken.TinyNet, broken.TinyData)


def test_a_segmenter_on_dict_batches_is_checked_on_its_images_and_masks():
    """``forward(self, x)`` on ``{"image", "mask"}`` batches: no key is named x, so the image (the one tensor
    shaped like example_input_array) is forward's input and the per-pixel mask the labels; both were left
    out ("no class labels", forward run on zeros shaped like the example)."""
    assert (
        check_forward(broken.TinySegNet, broken.TinySegData) == "(8, 1, 8, 8) float32 -> (8, 3, 8, 8) float32"
    )
    assert "labels in [0, 2] of 3 classes" in check_data(broken.TinySegNet, broken.TinySegData)


def test_float64_data_passes_when_forward_converts_it_itself():
    assert "batch[0] (16, 8) float64" in check_data(broken.ConvertsItsInputs, broken.Float64Data)


def test_manual_optimization_with_two_optimizers():
    """Gradient and step checks follow every optimizer; a step that returns no loss is fine, overfit skips."""
    subject = Subject(broken.ManualTwoOptimizers, broken.TinyData)
    assert "manual optimization" in check_training_step(subject)
    assert check_gradients(subject) == "all 4 trainable parameters get a non-zero gradient"
    check_optimizer_step(subject)
    with pytest.raises(SkipCheck, match="manual optimization"):
        check_overfit(subject)


def test_a_lazy_first_layer_passes_every_check():
    results = run_checks(broken.LazyFirstLayer, broken.TinyData, skip=["export"])
    assert {r.name: r.status for r in results} == {c.name: "PASS" for c in select_checks(skip=["export"])}, [
        r.detail for r in results if not r.ok
    ]


def test_a_layer_built_in_setup_from_the_datamodule_is_checked_and_load_from_checkpoint_is_failed():
    """setup() runs with the datamodule, as the Trainer runs it (9 checks errored on trainer.datamodule None);
    Lightning's load_from_checkpoint does not run it, and silently restored none of its weights."""
    results = {r.name: r for r in run_checks(broken.BuiltInSetup, broken.TinyData, skip=["export"])}
    assert {name for name, r in results.items() if r.status != "PASS"} == {"checkpoint"}, results
    assert results["checkpoint"].detail.startswith(
        "BuiltInSetup.load_from_checkpoint restores none of 2 tensor(s) (e.g. body.0.bias)"
    )


def test_a_training_step_that_skips_batches_by_returning_none():
    """Overfit follows the batches that give a loss; on a skipped first batch the one-step checks skip."""
    assert "< 0.01 at step" in check_overfit(broken.SkipsOddBatches, broken.TinyData)
    with pytest.raises(AssertionError, match="training_step returned None"):
        check_training_step(broken.SkipsEvenBatches, broken.TinyData)
    for check in (check_gradients, check_optimizer_step):
        with pytest.raises(SkipCheck, match="returned None on the first batch"):
            check(broken.SkipsEvenBatches, broken.TinyData)


class WithEMA(broken.TinyNet):
    """An EMA copy (``AveragedModel``), updated after each batch: its parameters want no gradient."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.ema = torch.optim.swa_utils.AveragedModel(self.head)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.head)


def test_an_averaged_model_copy_is_not_taken_for_untrained_parameters():
    detail = check_gradients(Subject(WithEMA, broken.TinyData))
    assert detail == "all 4 trainable parameters get a non-zero gradient (2 of AveragedModel copies left out)"


class WithSWACallback(broken.TinyNet):
    """Stochastic weight averaging from the module's own configure_callbacks, from the first epoch."""

    def configure_callbacks(self):
        return [L.pytorch.callbacks.StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=1)]


def test_swa_from_configure_callbacks_is_not_taken_for_a_step_that_changed_nothing():
    """SWA copies its average (the weights before the step) back as training ends: optimizer_step said
    "unchanged although they got a gradient (learning rate 0?)"."""
    assert (
        check_optimizer_step(Subject(WithSWACallback, broken.TinyData))
        == "all 4 trainable parameters changed"
    )


def test_forward_that_takes_noise_gets_inputs_shaped_like_example_input_array():
    subject = Subject(broken.TinyGenerator, broken.TinyData)
    expected = "(16, 4) float32 (shaped like example_input_array) -> (16, 8) float32"
    assert check_forward(subject) == expected
    assert check_batch_independence(subject).startswith("16 samples")
    assert "nan" not in check_determinism(subject)


def test_checks_take_instances_and_never_touch_them():
    model = broken.TinyNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_optimizer_step(model, broken.TinyData())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model._trainer is None


def test_single_sample_batches_and_plain_dataloaders():
    loader = DataLoader(TensorDataset(torch.randn(4, 8), torch.zeros(4, dtype=torch.long)), batch_size=1)
    with pytest.raises(SkipCheck, match="single sample"):
        check_batch_independence(broken.TinyNet, loader)
    assert "4 train batches" in check_data(broken.TinyNet, loader)


def test_failure_of_one_check_does_not_stop_the_others():
    results = {
        r.name: r for r in run_checks(broken.UnusedLayer, broken.TinyData, only=["forward", "gradients"])
    }
    assert results["forward"].status == "PASS"
    assert results["gradients"].status == "FAIL" and "projection.weight" in results["gradients"].detail


def test_unknown_check_name_is_rejected():
    with pytest.raises(
        KeyError, match=r"unknown check 'gradient' \(did you mean gradients\?\); known: data, forward"
    ):
        select_checks(only=["gradient"])
    with pytest.raises(KeyError, match="unknown check 'speed'; known: data, forward"):
        select_checks(only=["speed"])


def test_an_overfit_pass_never_reads_as_a_value_equal_to_its_threshold():
    from litforge.testing.model_checks import _shown_below

    assert _shown_below(0.0099996, 0.01) == "0.0099996"  # ".3g" printed "0.01 < 0.01"
    assert _shown_below(0.005, 0.01) == "0.005"


class _RandomIdsExample(L.LightningModule):
    """forward(ids) takes token ids that the dict batch names otherwise: the checks feed it inputs shaped like
    ``example_input_array``, which ``__init__`` draws at random (a restored module draws other ids)."""

    def __init__(self, vocab: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.embed = torch.nn.Embedding(vocab, 8)
        self.head = torch.nn.Linear(8, 2)
        self.example_input_array = {"ids": torch.randint(0, vocab, (2, 5))}

    def forward(self, ids):
        return self.head(self.embed(ids).mean(1))

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["tokens"]), batch["label"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_checkpoint_compares_both_modules_on_one_draw_of_a_random_example():
    rows = [{"tokens": torch.randint(0, 10, (5,)), "label": torch.tensor(i % 2)} for i in range(16)]
    assert "identical eval outputs" in check_checkpoint(_RandomIdsExample, DataLoader(rows, batch_size=8))


def test_checkpoint_names_the_arguments_a_partial_save_hyperparameters_leaves_out():
    passed = check_checkpoint(broken.HparamsPartlySaved, broken.TinyData)
    assert passed.endswith(
        "; not saved: hidden (load_from_checkpoint rebuilds it with the default, whatever a run set)"
    )
    assert "not saved" not in check_checkpoint(broken.TinyNet, broken.TinyData)


class _Series(L.LightningModule):
    """Series of any length (batches padded to their longest), one float per series."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=1)).squeeze(-1)

    def litforge_export_spec(self) -> dict:
        return {
            "inputs": (torch.zeros(2, 5, 3),),
            "input_names": ["x"],
            "dynamic_axes": {"x": {0: "batch", 1: "sequence"}},
        }


class _FixedSeries(_Series):
    def litforge_export_spec(self) -> dict:
        return {"inputs": (torch.zeros(2, 5, 3),), "input_names": ["x"]}


def test_the_data_check_takes_series_of_another_length_per_batch_and_says_what_export_makes_of_them() -> None:
    """Padding to each batch's longest item is the usual collate for sets and sequences: it failed the data
    check for a module without an export spec, whose fix was an export hook."""
    batches = [(torch.randn(4, length, 3), torch.randn(4)) for length in (5, 7, 6)]
    detail = check_data(_Series(), batches)
    assert "3 train batches" in detail and "varies" not in detail
    padded = check_data(_FixedSeries(), batches)
    assert padded.endswith(
        "; axis 1 of batch[0] varies between batches (padding; an export takes one length unless "
        "litforge_export_spec() declares {1: 'sequence'})"
    )
    with pytest.raises(
        AssertionError, match=r"train batch 1: batch\[0\] is \(4, 5, 2\) float32, the first batch had"
    ):
        check_data(
            _FixedSeries(), [(torch.randn(4, 5, 3), torch.randn(4)), (torch.randn(4, 5, 2), torch.randn(4))]
        )


def test_sparse_gradients_are_checked_like_dense_ones():
    assert (
        check_gradients(broken.SparseEmbeddings, broken.TinyData)
        == "all 1 trainable parameters get a non-zero gradient"
    )
    assert (
        check_optimizer_step(broken.SparseEmbeddings, broken.TinyData) == "all 1 trainable parameters changed"
    )


def test_the_step_budget_counts_batches_also_for_two_optimizers_stepped_by_hand():
    """Lightning's max_steps counts optimizer steps: ``check --overfit-steps 40`` trained 20 batches of a
    model that steps two optimizers in each training_step."""
    from litforge.testing.harness import fit_on_batch

    model, calls = broken.ManualTwoOptimizers(), []
    original = model.training_step
    model.training_step = lambda batch, batch_idx: calls.append(batch_idx) or original(batch, batch_idx)
    fit_on_batch(model, next(iter(broken.TinyData().train_dataloader())), steps=6)
    assert len(calls) == 6


class _TwoValidationSets(broken.TinyData):
    """Lightning runs each validation loader of a list or dict (``val_loss/dataloader_idx_0``, ...)."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.as_dict = as_dict

    def val_dataloader(self):
        clean, noisy = (
            DataLoader(TensorDataset(self.x, self.y), 16),
            DataLoader(TensorDataset(self.x, self.y), 32),
        )
        return {"clean": clean, "noisy": noisy} if self.as_dict else [clean, noisy]


@pytest.mark.parametrize(
    ("as_dict", "names"), [(False, ("val[0]", "val[1]")), (True, ("val[clean]", "val[noisy]"))]
)
def test_the_data_check_reads_each_of_several_validation_loaders(as_dict, names):
    # the list itself was taken as a loader and its loaders as batches: "val batch 0 is a DataLoader with no tensors"
    detail = check_data(broken.TinyNet, _TwoValidationSets(as_dict))
    assert f"4 train + 4 {names[0]} + 2 {names[1]} batches" in detail


class _TripletsToTrainOn(broken.TinyData):
    """Metric learning: (anchor, positive, negative) to train on, (x, label) pairs to validate on."""

    def __init__(self, mixed_validation: bool = False) -> None:
        super().__init__()
        self.mixed_validation = mixed_validation

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.x.flip(0), self.x.roll(1, 0)), batch_size=16)

    def val_dataloader(self):
        pairs = [(x, y) for x, y in TensorDataset(self.x, self.y)]
        if self.mixed_validation:  # a val batch of triplets among the pairs: still refused
            pairs[32:] = [(x, x, x) for x, _ in pairs[32:]]
        return DataLoader(pairs, batch_size=16)


def test_the_data_check_compares_each_loader_with_its_own_first_batch_when_they_hold_other_entries():
    detail = check_data(broken.TinyNet, _TripletsToTrainOn())
    assert "batch[2] (16, 8) float32; val: batch[0] (16, 8) float32, batch[1] (16,) int64" in detail
    with pytest.raises(AssertionError, match=r"val batch 2 has entries .*, the first batch had"):
        check_data(broken.TinyNet, _TripletsToTrainOn(mixed_validation=True))


@pytest.mark.parametrize(
    ("module", "noted"), [(broken.PretrainedBodyInEvalMode, True), (broken.FrozenBodyInEvalMode, False)]
)
def test_fit_notes_a_training_submodule_left_in_eval_mode(module, noted, tmp_path, capsys):
    """What check's training_step check fails, litforge fit says at the first step: a from_pretrained body
    fine-tuned in eval mode has no dropout (Lightning keeps each module's mode)."""
    from litforge.callbacks.idle_layers_note import IdleLayersNote

    trainer = L.Trainer(
        max_steps=2, callbacks=[IdleLayersNote()], default_root_dir=tmp_path, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module(), broken.TinyData())
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("litforge: note:")]
    expected = [
        "litforge: note: self.body (1 Dropout/BatchNorm layers) is in eval mode while training: dropout"
    ]
    assert [line[: len(expected[0])] for line in notes] == (expected if noted else [])


class _UnusedPooler(broken.TinyNet):
    """AutoModel + a mean-pooling head of one's own: the encoder's pooler never reaches the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.pooler = torch.nn.Module()
        self.encoder.pooler.dense = torch.nn.Linear(4, 4)


def test_an_unused_hugging_face_pooler_is_named_with_its_fix():
    with pytest.raises(AssertionError, match=r"encoder\.pooler\.dense\.weight.*add_pooling_layer=False"):
        check_gradients(_UnusedPooler(), broken.TinyData())


class _DecayToZero(broken.TinyNet):
    """A Hugging Face style schedule: linear decay to 0 over trainer.estimated_stepping_batches."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        total = int(self.trainer.estimated_stepping_batches)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def test_an_overfit_stopped_by_a_schedule_that_reached_0_says_so():
    """The advice blamed the model's output size or loss while the user's own schedule had taken the rate to 0
    at the check's last step."""
    with pytest.raises(
        AssertionError, match=r"its LR scheduler took the learning rate from 0\.001 to 0 by the last step"
    ):
        check_overfit(_DecayToZero(), broken.TinyData(), steps=20)
