"""scikit-learn's bundled 8x8 digits (1,797 images, 64 pixel values 0-16, 10 classes); no download.

litforge fit                       # trains the default classifier on it
litforge fit --data.batch_size 32
"""

from __future__ import annotations

import numpy as np

from litforge.data.in_memory import InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    """The default DataModule: handwritten digits from ``sklearn.datasets.load_digits``.

    Features are the raw pixel intensities (0-16); normalisation happens inside the model so that an
    exported model takes the same raw values. See ``InMemoryDataModule`` for the arguments.
    """

    image_shape = (1, 8, 8)

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data.astype(np.float32), digits.target.astype(np.int64), [str(i) for i in range(10)]
