"""Reference LightningModules; each is selectable by short name (``--model Classifier``)."""

from litforge.models.classifier import Classifier

__all__ = ["Classifier"]
