"""Reference LightningModules; each is selectable by short name (``--model Classifier``)."""

from litforge.models.classifier import Classifier
from litforge.models.hf import HFSequenceClassifier

__all__ = ["Classifier", "HFSequenceClassifier"]
