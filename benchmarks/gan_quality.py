"""GAN sample quality as the default digits classifier sees it: mean confidence and class spread.

litforge fit --config configs/gan.yaml --run default      # runs/gan/default/checkpoints/best.ckpt
litforge fit --run default                                # runs/classifier/default/checkpoints/best.ckpt
python benchmarks/gan_quality.py --gan runs/gan/default/checkpoints/best.ckpt \
    --classifier runs/classifier/default/checkpoints/best.ckpt

Scores three sets of images with the classifier: real test digits (the ceiling), the trained GAN's
samples, and an untrained generator's samples (the floor). ``confidence`` is the mean top-class
probability; ``classes_covered`` how many of the 10 digits are predicted for at least 2% of samples;
``class_entropy`` the entropy (bits) of the predicted-class histogram (log2(10) = 3.32 for a uniform
spread, 0 for mode collapse). Writes benchmarks/results/gan_quality.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import torch
from _common import print_table, save_results


def score(classifier: torch.nn.Module, images: torch.Tensor, name: str) -> dict[str, Any]:
    with torch.no_grad():
        probabilities = classifier(images).softmax(dim=-1)  # (N, 10)
    counts = torch.bincount(probabilities.argmax(dim=-1), minlength=probabilities.shape[1]).float()
    share = counts / counts.sum()
    entropy = -sum(p * math.log2(p) for p in share.tolist() if p > 0)
    return {
        "images": name,
        "n": len(images),
        "confidence": probabilities.max(dim=-1).values.mean().item(),
        "classes_covered": int((share >= 0.02).sum()),
        "class_entropy": entropy,
        "class_counts": counts.int().tolist(),
    }


def main() -> None:
    from litforge.data import DigitsDataModule
    from litforge.models import GAN, Classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gan", required=True, help="GAN checkpoint (litforge fit --config configs/gan.yaml)"
    )
    parser.add_argument("--classifier", required=True, help="classifier checkpoint (litforge fit)")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()

    classifier = Classifier.load_from_checkpoint(
        args.classifier, map_location="cpu", weights_only=True
    ).eval()
    gan = GAN.load_from_checkpoint(args.gan, map_location="cpu", weights_only=True).eval()
    torch.manual_seed(0)
    untrained = GAN(**{k: v for k, v in gan.hparams.items() if k != "compile"}).eval()
    real = DigitsDataModule().test_x
    rows = [
        score(classifier, real, "real test digits"),
        score(classifier, gan.sample(args.samples, seed=0).detach(), "trained GAN samples"),
        score(classifier, untrained.sample(args.samples, seed=0).detach(), "untrained generator"),
    ]
    print_table(rows, ["images", "n", "confidence", "classes_covered", "class_entropy", "class_counts"])
    payload = {"gan": args.gan, "classifier": args.classifier, "rows": rows}
    print(f"saved {save_results('gan_quality', payload)}", file=sys.stderr)


if __name__ == "__main__":
    main()
