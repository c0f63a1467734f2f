"""What a spawned process of ``test_tune_units`` runs: imports optuna and litforge's storage factory only,
so the four processes start in a fraction of a second instead of importing Lightning."""

from __future__ import annotations

import optuna

from litforge.tune.optuna_factories import make_storage


def open_together(urls: list[str], start, results) -> None:
    """Open each new study database when every process is at the barrier; put "ok" or the error."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for url in urls:
        start.wait()  # every process opens this new database at the same moment
        try:
            optuna.create_study(storage=make_storage(url, heartbeat_s=5), study_name="s", load_if_exists=True)
            results.put("ok")
        except Exception as error:
            results.put(f"{type(error).__name__}: {error}")
