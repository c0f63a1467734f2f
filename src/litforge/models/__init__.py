"""Reference LightningModules; each is selectable by short name (``--model Classifier``)."""

from litforge.models.autoencoder import AutoEncoder
from litforge.models.classifier import Classifier
from litforge.models.gan import GAN
from litforge.models.hf import HFSequenceClassifier
from litforge.models.transformer import SequenceTransformer

__all__ = ["GAN", "AutoEncoder", "Classifier", "HFSequenceClassifier", "SequenceTransformer"]
