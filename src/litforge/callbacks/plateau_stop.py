"""Stops a run whose metric has stopped improving; what ``litforge tune --patience N`` adds to each trial.

litforge tune --space configs/digits_search.yaml --patience 6

``litforge tune`` appends it to the fit config of every trial and to ``best.yaml`` (so training from
``best.yaml`` stops where the best trial stopped and reproduces its value).
"""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping


class PlateauStop(EarlyStopping):
    """Lightning's ``EarlyStopping``, as a class of its own: its checkpoint key differs from that of an
    ``EarlyStopping`` on the same metric in the user's config, so both can be on one trainer (Lightning
    refuses two callbacks with the same key)."""
