"""Reference LightningDataModules.

``DigitsDataModule`` (the default, scikit-learn's bundled digits), ``SyntheticDataModule`` (a generated,
learnable classification set of any size), ``CSVDataModule`` (your own tabular data),
``TextClassificationDataModule`` (labelled text for Hugging Face models) and
``SequenceTaskDataModule`` (generated token-sequence tasks for the transformer).
"""

from litforge.data.csv import CSVDataModule
from litforge.data.digits import DigitsDataModule
from litforge.data.in_memory import InMemoryDataModule
from litforge.data.sequence import SequenceTaskDataModule
from litforge.data.synthetic import SyntheticDataModule
from litforge.data.text import TextClassificationDataModule

__all__ = [
    "CSVDataModule",
    "DigitsDataModule",
    "InMemoryDataModule",
    "SequenceTaskDataModule",
    "SyntheticDataModule",
    "TextClassificationDataModule",
]
