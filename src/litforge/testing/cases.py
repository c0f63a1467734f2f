"""``parametrize_checks``: every standard check on each of your models as its own pytest test.

from litforge.testing import parametrize_checks

@parametrize_checks({"mlp": (MyModel, MyDataModule)}, skip=["export"])
def test_standard_checks(litforge_check):
    litforge_check()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from litforge.testing.harness import quiet
from litforge.testing.registry import select_checks
from litforge.testing.subject import DataLike, ModelLike, SkipCheck, Subject


@dataclass
class CheckCase:
    """One (model, check) pair; calling it runs the check: a failure raises ``AssertionError``, a check
    that does not apply calls ``pytest.skip`` with the reason."""

    model_id: str
    check: str
    model: ModelLike
    data: DataLike = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __call__(self) -> str:
        import pytest

        check = select_checks(only=[self.check])[0]
        try:
            with quiet():
                return check.run(Subject(self.model, self.data, seed=self.seed), **self.options)
        except SkipCheck as reason:
            pytest.skip(str(reason))

    def __str__(self) -> str:
        return f"{self.model_id}-{self.check}"


def parametrize_checks(
    models: Mapping[str, tuple[ModelLike, DataLike]] | Iterable[tuple[ModelLike, DataLike]],
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> Any:
    """``pytest.mark.parametrize`` over ``litforge_check``: one test per model and check, with ids like
    ``mlp-gradients``. ``models`` maps an id to ``(model, data)`` (instances or factories such as the
    classes) or is a list of such pairs (ids from the model's name)."""
    import pytest

    pairs = models.items() if isinstance(models, Mapping) else ((_name(m), (m, d)) for m, d in models)
    checks = select_checks(only, skip)
    cases = [
        CheckCase(model_id, check.name, model, data, (options or {}).get(check.name, {}), seed)
        for model_id, (model, data) in pairs
        for check in checks
    ]
    return pytest.mark.parametrize("litforge_check", cases, ids=[str(case) for case in cases])


def _name(model: ModelLike) -> str:
    return getattr(model, "__name__", type(model).__name__)
