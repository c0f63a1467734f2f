"""The export extension contract: ``litforge_export_spec()`` with two inputs, dynamic batch and sequence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from litforge.errors import UsageError
from litforge.export.exporter import export_module
from litforge.export.spec import export_spec


class TwoInputTextModel(nn.Module):
    """A stand-in for a Hugging Face classifier: token ids + attention mask -> logits."""

    def __init__(self, vocab: int = 50, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.num_classes = classes  # declared, as a Hugging Face model's num_labels: its head is a classifier
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)  # (B, T, 1)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
        return self.head(pooled)

    def litforge_export_spec(self) -> dict:
        ids = torch.randint(1, 50, (4, 12), generator=torch.Generator().manual_seed(0))
        mask = torch.ones(4, 12, dtype=torch.int64)
        mask[1, 8:] = 0

        def save_assets(out: Path) -> None:  # a real (tiny) WordPiece tokenizer, built offline
            from transformers import BertTokenizerFast

            vocab = out / "vocab.txt"
            vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *(f"tok{i}" for i in range(46))]))
            BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(str(out / "tokenizer"))
            vocab.unlink()

        return {
            "inputs": (ids, mask),
            "input_names": ["input_ids", "attention_mask"],
            "output_names": ["logits"],
            "dynamic_axes": {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask")},
            "request_format": "texts",
            "save_assets": save_assets,
        }


def test_hook_module_exports_to_every_format_with_parity(tmp_path: Path) -> None:
    result = export_module(TwoInputTextModel(), tmp_path, ["onnx", "pt2", "torchscript"])
    assert result.failed == []
    record = json.loads((tmp_path / "export.json").read_text())
    assert record["request_format"] == "texts"
    assert record["inputs"] == [
        {
            "name": "input_ids",
            "dtype": "int64",
            "shape": ["batch", "sequence"],
            "range": [0, 49],
        },  # the embedding's ids
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    assert record["outputs"][0]["shape"] == ["batch", 3]
    assert "tokenizer/tokenizer.json" in [a["file"] for a in record["assets"]]
    for entry in record["formats"].values():
        cases = [c["case"] for c in entry["parity"]["cases"]]
        # batch sizes 1, 7, 64 and a shorter sequence: the dynamic axes really are dynamic
        assert cases == ["random batch 1", "random batch 7", "random batch 64", "random batch 7, sequence 6"]
        assert entry["parity"]["passed"]
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph  # the spec's axis names, not torch's symbols (s23)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == ["batch", 3]


def test_texts_are_tokenized_with_the_exported_tokenizer_and_batched(tmp_path: Path) -> None:
    """What ``litforge serve`` does with {"texts": [...]}: one model call for several requests."""
    from litforge.export.artifact import Artifact
    from litforge.serve.inference import Counters, Decoded, infer

    module = TwoInputTextModel().eval()
    assert export_module(module, tmp_path, ["onnx"]).failed == []
    artifact = Artifact.open(tmp_path, "onnx")
    texts = ["tok1 tok2 tok3", "tok4", "tok5 tok6"]
    encoded = artifact.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = module(encoded["input_ids"], encoded["attention_mask"]).softmax(-1)
    counters = Counters()
    answers = infer(artifact, [Decoded(texts[:2]), Decoded(texts[2:])], counters)
    assert counters.snapshot() == {
        "requests": 2,
        "model_calls": 1,
        "rows": 3,
        "answers": {"2xx": 0, "4xx": 0, "5xx": 0},
    }
    probabilities = [row for answer in answers for row in answer["probabilities"]]
    torch.testing.assert_close(torch.tensor(probabilities), expected, atol=1e-5, rtol=1e-5)


def test_without_hook_example_input_array_is_used() -> None:
    module = nn.Linear(5, 2)
    module.example_input_array = torch.zeros(3, 5)
    spec = export_spec(module)
    assert spec.input_names == ["input"]
    assert spec.dynamic_axes == {"input": {0: "batch"}}
    assert spec.request_format == "features"


def test_without_example_input_a_datamodule_batch_is_used() -> None:
    spec = export_spec(nn.Linear(5, 2), data_batch=torch.rand(64, 5))
    assert spec.inputs[0].shape == (2, 5)
    assert spec.dynamic_axes == {"input": {0: "batch"}}


def test_a_stale_example_input_is_refused_but_a_noise_input_is_kept() -> None:
    """An example of 12x12 images for 8x8 data under adaptive pooling: forward runs on both, so the export
    would take only 12x12 and refuse every real image. A GAN's forward(z) fails on the data: its example
    (noise) is what forward takes, and it stays."""
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)).eval()
    cnn.example_input_array = torch.zeros(2, 1, 12, 12)
    with pytest.raises(
        UsageError,
        match=r"rows of shape \(1, 12, 12\) but its datamodule's batches have rows of shape \(1, 8, 8\)",
    ):
        export_spec(cnn, data_batch=torch.rand(16, 1, 8, 8))
    generator = nn.Linear(4, 16)
    generator.example_input_array = torch.zeros(2, 4)
    assert export_spec(generator, data_batch=torch.rand(16, 16)).inputs[0].shape == (2, 4)


def test_module_without_example_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="example_input_array"):
        export_spec(nn.Linear(5, 2))


def test_hook_with_unknown_request_format_is_a_usage_error() -> None:
    class Bad(TwoInputTextModel):
        def litforge_export_spec(self) -> dict:
            return {**super().litforge_export_spec(), "request_format": "images"}

    with pytest.raises(UsageError, match="request_format"):
        export_spec(Bad())


def test_a_texts_export_without_a_tokenizer_or_with_a_bad_max_length_is_refused() -> None:
    """Exported without save_assets, the folder had no tokenizer/: serve and predict then refused it, and
    their advice (re-export) gave the same folder again."""

    class NoTokenizer(TwoInputTextModel):
        def litforge_export_spec(self) -> dict:
            spec = super().litforge_export_spec()
            spec.pop("save_assets")
            return spec

    class BadLength(TwoInputTextModel):
        def litforge_export_spec(self) -> dict:
            return {**super().litforge_export_spec(), "max_length": 0}

    with pytest.raises(
        UsageError, match=r"request_format 'texts' needs 'save_assets' to write the tokenizer"
    ):
        export_spec(NoTokenizer())
    with pytest.raises(UsageError, match="max_length must be a positive int, got 0"):
        export_spec(BadLength())
    assert export_spec(TwoInputTextModel()).max_length is None


def test_a_spec_without_a_dynamic_batch_axis_is_refused_before_tracing(tmp_path: Path) -> None:
    """It failed at parity with onnxruntime's "Got invalid dimensions ... Got: 1 Expected: 4"."""

    class FixedBatch(TwoInputTextModel):
        def litforge_export_spec(self) -> dict:
            spec = super().litforge_export_spec()
            spec.pop("dynamic_axes")
            return spec

    with pytest.raises(
        UsageError,
        match=r"FixedBatch.litforge_export_spec\(\): no input has a dynamic batch axis, so the artifact would "
        r"take batches of exactly 4 rows; add 'dynamic_axes': \{'input_ids': \{0: 'batch'\}, ...\}",
    ):
        export_module(FixedBatch(), tmp_path / "out", ["onnx"])
    assert not (tmp_path / "out").exists()


class PerColumnEmbeddings(nn.Module):
    """A tabular model: one embedding table per categorical column (4, 3 and 5 levels) of one (B, 3) input."""

    def __init__(self, levels: tuple[int, ...] = (4, 3, 5)) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, 2) for n in levels)
        self.head = nn.Linear(2 * len(levels) + 2, 1)

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        columns = [table(cat[:, i]) for i, table in enumerate(self.tables)]
        return self.head(torch.cat([*columns, num], dim=1)).squeeze(-1)


def test_a_table_per_column_bounds_no_column_by_another(tmp_path: Path) -> None:
    """``tables[0](cat[:, 0])`` looks up a view that starts where ``cat`` does: its 4 rows used to become
    ``cat``'s range [0, 3], and the third column's valid id 4 was refused by predict --artifact and serve.
    The largest table bounds the input instead; its 0 matters most: ONNX reads id -1 as the last row."""
    from litforge.export.input_values import embedding_ranges

    model = PerColumnEmbeddings()
    cat = torch.tensor([[0, 1, 4], [3, 2, 0]])
    assert embedding_ranges(model, ["cat", "num"], (cat, torch.zeros(2, 2))) == {"cat": [0, 4]}
    whole = TwoInputTextModel()
    ids, mask = torch.randint(1, 50, (2, 5)), torch.ones(2, 5, dtype=torch.int64)
    assert embedding_ranges(whole, ["input_ids", "attention_mask"], (ids, mask)) == {"input_ids": [0, 49]}


def test_a_tuple_example_input_array_exports_as_forwards_named_inputs(tmp_path: Path) -> None:
    """``example_input_array = (cat, num)`` is Lightning's form for a ``forward(cat, num)``: exported as two
    inputs named after forward's parameters (it was refused with "set `self.example_input_array`")."""
    model = PerColumnEmbeddings()
    model.example_input_array = (torch.tensor([[0, 1, 4], [3, 2, 0]]), torch.zeros(2, 2))
    assert export_spec(model).input_names == ["cat", "num"]
    result = export_module(model, tmp_path, ["onnx", "pt2"])
    assert result.failed == []
    record = json.loads((tmp_path / "export.json").read_text())
    assert record["inputs"] == [
        {"name": "cat", "dtype": "int64", "shape": ["batch", 3], "range": [0, 4]},
        {"name": "num", "dtype": "float32", "shape": ["batch", 2]},
    ]
    model.example_input_array = (torch.zeros(2, 3, dtype=torch.long), torch.zeros(5, 2))
    with pytest.raises(UsageError, match=r"cat \(2, 3\), num \(5, 2\), which share no batch axis 0"):
        export_spec(model)


def test_a_tuple_example_of_other_sizes_than_the_data_is_refused_before_anything_is_written(tmp_path) -> None:
    """``forward(x, lengths)`` runs on the run's 12-step series but ``example_input_array`` holds 5 steps: the
    export passed its parity checks on random inputs, and the artifact refused every real series."""
    from broken_modules import FEATURES, StaleSequenceExample

    real = (torch.randn(4, 12, FEATURES), torch.tensor([12, 3, 7, 5]))
    with pytest.raises(
        UsageError, match=r"x has rows of shape \(5, 8\) in example_input_array but \(12, 8\)"
    ):
        export_module(StaleSequenceExample(), tmp_path / "export", ["onnx"], real_inputs=real)
    assert not (tmp_path / "export").exists()
    short = (torch.randn(4, 5, FEATURES), torch.tensor([5, 3, 4, 5]))  # the data's sizes: exported
    assert (
        export_module(StaleSequenceExample(), tmp_path / "export", ["onnx"], real_inputs=short).failed == []
    )


class PackedGRU(nn.Module):
    """``pack_padded_sequence``: neither ONNX exporter can trace it at a dynamic length."""

    def __init__(self) -> None:
        super().__init__()
        self.gru, self.head = nn.GRU(3, 8, batch_first=True), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return self.head(self.gru(packed)[1][-1])

    def litforge_export_spec(self) -> dict:
        return {
            "inputs": (torch.randn(2, 6, 3), torch.tensor([6, 4])),
            "input_names": ["x", "lengths"],
            "dynamic_axes": {"x": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}},
        }


def test_an_onnx_export_that_fails_says_the_dynamo_cause_in_one_line(tmp_path, capfd) -> None:
    """The legacy exporter's failure used to be the reason given (a C++ ``vector::_M_range_check``), after
    ~40 lines of TorchScript graph on stdout; the cause that matters is the dynamo exporter's."""
    result = export_module(PackedGRU().eval(), tmp_path / "export", ["onnx"])
    assert result.failed == ["onnx"]
    error = json.loads((tmp_path / "export" / "export.json").read_text())["formats"]["onnx"]["error"]
    assert error.startswith("export failed: RuntimeError: TypeError: zeros()"), error
    assert "(the legacy exporter failed too: RuntimeError: vector::_M_range_check" in error
    printed = capfd.readouterr()
    assert "Torch IR graph" not in printed.out + printed.err


def test_a_tuple_example_of_token_ids_is_noted_as_fixed_length(capsys) -> None:
    """The note that an example's length is the only one exported came for a single input only: a tuple
    (input_ids, attention_mask) of 32 tokens exported at 32 without a word."""
    from litforge.export.exporter import _note_a_fixed_sequence_length

    class TokenPair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.example_input_array = (
                torch.ones(2, 32, dtype=torch.long),
                torch.ones(2, 32, dtype=torch.long),
            )

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return (self.embed(input_ids) * attention_mask.unsqueeze(-1)).mean(1)

    module = TokenPair()
    _note_a_fixed_sequence_length(module, export_spec(module))
    assert "TokenPair is exported for integer rows of shape input_ids (32,), attention_mask (32,) only" in (
        capsys.readouterr().err
    )


def test_a_texts_export_takes_the_datamodules_max_length_under_its_usual_names() -> None:
    """Hugging Face's scripts call it max_seq_length: the export fell back to the tokenizer's 512."""
    from types import SimpleNamespace

    from litforge.export.loading import _text_max_length

    assert _text_max_length(SimpleNamespace(max_length=32)) == 32
    assert _text_max_length(SimpleNamespace(max_seq_length=16)) == 16
    assert _text_max_length(SimpleNamespace(hparams={"max_len": 24})) == 24
    assert _text_max_length(SimpleNamespace(max_seq_length=True)) is None  # a flag is not a length


class StudentWithTeacher(torch.nn.Module):
    """Distillation code's usual shape: the teacher is a registered submodule forward never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        self.teacher = torch.nn.Linear(4, 3)
        self.example_input_array = torch.zeros(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_submodule_forward_never_uses_is_named_for_the_formats_that_carry_it(tmp_path, capsys) -> None:
    """A teacher's weights shipped inside model.pt2 and model.torchscript.pt without a word (ONNX left them
    out)."""
    from litforge.export.exporter import export_module

    assert export_module(StudentWithTeacher(), tmp_path / "a", ["pt2"]).failed == []
    assert "note: forward does not use teacher (15 parameters): the pt2 artifacts carry those weights" in (
        capsys.readouterr().err
    )
    assert export_module(StudentWithTeacher(), tmp_path / "b", ["onnx"]).failed == []
    assert "does not use" not in capsys.readouterr().err
    tied = StudentWithTeacher()
    tied.teacher.weight = tied.net[2].weight = torch.nn.Parameter(torch.randn(3, 4))  # one weight, two places
    tied.net[0] = torch.nn.Linear(4, 4)
    tied.teacher.bias = None
    assert export_module(tied, tmp_path / "c", ["pt2"]).failed == []
    assert "does not use" not in capsys.readouterr().err


def test_export_model_flags_read_values_as_fit_does_and_reach_kwargs_and_dict_arguments() -> None:
    """export --model.NAME: 1e-3 stayed a string (YAML 1.1), a **kwargs constructor and the long form
    --model.init_args.lr were refused, a flag taken as the value went through."""
    from litforge.cli.export import model_arguments
    from litforge.export.loading import _apply_model_argument

    overrides, rest = model_arguments(["--run", "r", "--model.lr", "1e-3", "--model.init_args.depth=2"])
    assert overrides == {"lr": 0.001, "depth": 2} and rest == ["--run", "r"]
    with pytest.raises(UsageError, match=r"--model\.lr expects a value"):
        model_arguments(["--model.lr", "--format", "onnx"])

    class Takes:
        def __init__(self, encoder: dict | None = None, **kwargs) -> None: ...

    kwargs = {"encoder": {"hidden": 64, "layers": 2}}
    _apply_model_argument(Takes, kwargs, "encoder.hidden", 32)
    _apply_model_argument(Takes, kwargs, "anything", 1)  # **kwargs
    assert kwargs == {"encoder": {"hidden": 32, "layers": 2}, "anything": 1}

    class Strict:
        def __init__(self, lr: float = 0.1) -> None: ...

    with pytest.raises(UsageError, match=r"--model.lrr: Strict has no argument 'lrr' \(did you mean lr\?\)"):
        _apply_model_argument(Strict, {}, "lrr", 1)
    with pytest.raises(UsageError, match="Strict's lr is not a dict"):
        _apply_model_argument(Strict, {"lr": 0.1}, "lr.x", 1)


def test_padded_rows_of_values_beside_a_lengths_input_get_the_fixed_length_note(capsys) -> None:
    """A waveform padded to its batch's longest clip, with the clips' lengths: exported at that one length
    (every other clip refused by the artifact), which no note said for rows of floats."""
    from litforge.export.exporter import _note_a_fixed_sequence_length

    class Clips(torch.nn.Module):
        def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return wave.sum(1, keepdim=True) / lengths.unsqueeze(1)

    wave, lengths = torch.randn(4, 1600), torch.tensor([1600, 900, 1200, 400])
    spec = export_spec(Clips(), None, (wave, lengths))
    _note_a_fixed_sequence_length(Clips(), spec, (wave, lengths))
    assert "Clips is exported for rows of shape wave (1600,) only" in capsys.readouterr().err
    features = torch.randn(4, 16)  # rows of 16 features beside other integers: no sequence, no note
    _note_a_fixed_sequence_length(
        Clips(), export_spec(Clips(), None, (features, lengths)), (features, lengths)
    )
    assert capsys.readouterr().err == ""


def test_a_tolerance_of_ones_own_replaces_the_dtypes_and_is_recorded(tmp_path) -> None:
    """ONNX Runtime's STFT differs from eager by ~2e-4 on logits: beyond float32's 1e-5, which left a model
    computing a spectrogram in forward without an ONNX export. ``--tolerance`` accepts a looser bound."""
    from litforge.export.exporter import export_module
    from litforge.export.parity import compare

    expected, off = np.zeros(4, dtype=np.float32), np.full(4, 2e-4, dtype=np.float32)
    assert not compare(expected, off)["passed"] and compare(expected, off, 1e-3)["passed"]
    module = torch.nn.Linear(3, 2)
    module.example_input_array = torch.zeros(2, 3)
    result = export_module(module, tmp_path, ["torchscript"], tolerance=1e-3)
    case = result.metadata["formats"]["torchscript"]["parity"]["cases"][0]
    assert (case["atol"], case["rtol"]) == (1e-3, 1e-3)
