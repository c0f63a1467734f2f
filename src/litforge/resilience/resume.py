"""Find where a run stopped: the newest checkpoint that fully loads, and whether the run already finished.

litforge fit --run my-run --resume auto     # continue my-run exactly where it stopped (or start it)
litforge fit --resume runs/classifier/my-run/checkpoints/step-00000400.ckpt
"""

from __future__ import annotations

import difflib
import json
import warnings
from pathlib import Path
from typing import Any

from litforge.atomic_files import write_atomically
from litforge.errors import UsageError
from litforge.resilience.checkpoint_file import read_checkpoint

FINISHED_MARKER = "finished.json"
# Written by ``OnExceptionCheckpoint`` in the middle of a failed step: kept for inspection, never resumed
# from automatically because it is not a step boundary (pass it to ``--resume PATH`` to use it anyway).
EXCEPTION_CHECKPOINT = "on_exception.ckpt"
_REQUIRED_KEYS = ("state_dict", "loops", "global_step", "epoch")


class CheckpointUnreadable(Exception):
    """A checkpoint file is truncated, corrupt or not a Lightning training checkpoint."""


def load_checkpoint_safely(path: Path) -> dict[str, Any]:
    """Check ``path`` against its checksum, fully load it with ``weights_only=True`` and check it can
    resume training (a file without a checksum, written by plain Lightning, is loaded unverified).

    Raises:
        CheckpointUnreadable: with the reason, for a truncated, corrupt (checksum mismatch) or foreign file.
    """
    try:
        checkpoint = read_checkpoint(path, "checkpoint")
    except UsageError as error:
        raise CheckpointUnreadable(str(error).removeprefix("checkpoint: ")) from None
    missing = [k for k in _REQUIRED_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointUnreadable(
            f"{path}: not a Lightning training checkpoint (missing {', '.join(missing)})"
        )
    return checkpoint


def find_resume_checkpoint(checkpoints: Path) -> Path | None:
    """The newest (by modification time) ``*.ckpt`` in ``checkpoints`` that fully loads, or ``None``.

    Unreadable files are skipped with a warning naming them; ``on_exception.ckpt`` is never chosen.
    Reads only: temporary files may belong to a live writer (``remove_killed_writes`` runs under the lock).
    """
    for path in sorted(_resumable_candidates(checkpoints), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            load_checkpoint_safely(path)
        except CheckpointUnreadable as error:
            warnings.warn(f"skipping unreadable checkpoint: {error}", stacklevel=2)
            continue
        return path
    return None


def _resumable_candidates(checkpoints: Path) -> list[Path]:
    """The ``*.ckpt`` files of ``checkpoints`` a resume may start from (not ``on_exception.ckpt``)."""
    if not checkpoints.is_dir():
        return []
    return [p for p in checkpoints.glob("*.ckpt") if p.name != EXCEPTION_CHECKPOINT and p.is_file()]


def remove_killed_writes(checkpoints: Path) -> None:
    """Delete the temporary files of checkpoint writes that a killed process left behind. Call it only
    while holding the run's lock: a live process's temporary files look the same."""
    for leftover in checkpoints.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def read_finished(run_path: Path) -> dict[str, Any] | None:
    """The run-finished marker's content, or ``None`` when the run has not finished."""
    marker = run_path / FINISHED_MARKER
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def finish_record(trainer: Any) -> dict[str, Any]:
    """What ``finished.json`` says of a fit that ended: its step and epoch, its limits, and what ended it
    (``max_epochs``, ``max_steps``, or ``stopped``: early stopping or a callback)."""
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    if max_steps not in (None, -1) and trainer.global_step >= max_steps:
        ended_by = "max_steps"
    elif max_epochs not in (None, -1) and trainer.current_epoch >= max_epochs:
        ended_by = "max_epochs"
    else:
        ended_by = "stopped"
    return {
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "max_epochs": max_epochs,
        "max_steps": max_steps,
        "ended_by": ended_by,
    }


def trains_further(finished: dict[str, Any], max_epochs: Any, max_steps: Any) -> str | None:
    """Why a fit with these limits trains a finished run on (``--trainer.max_epochs 5`` after a run that ended
    at its limit of 3), or ``None``: the same command again, or a run that stopped early, does nothing."""
    ended_by = finished.get("ended_by")
    if ended_by == "max_epochs" and _beyond(max_epochs, finished.get("max_epochs", max_epochs)):
        return f"--trainer.max_epochs {max_epochs} (it ended at its max_epochs {finished['max_epochs']})"
    if ended_by == "max_steps" and _beyond(max_steps, finished.get("max_steps", max_steps)):
        return f"--trainer.max_steps {max_steps} (it ended at its max_steps {finished['max_steps']})"
    return None


def _beyond(limit: Any, reached: Any) -> bool:
    """Whether a limit goes past the one a run reached: a larger one, or -1 (none) after a finite one."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not isinstance(reached, int):
        return False
    return (limit == -1 and reached >= 0) or limit > reached


def further_hint(finished: dict[str, Any]) -> str:
    """How to train a finished run further, by what ended it (``finished.json``'s ``ended_by``)."""
    ended_by = finished.get("ended_by")
    if ended_by in ("max_epochs", "max_steps"):
        return f"to train it further, pass a larger --trainer.{ended_by} than its {finished.get(ended_by)}"
    if ended_by == "stopped":
        return "it was stopped early, e.g. by EarlyStopping; delete its finished.json to train on anyway"
    return "delete its finished.json to train on"


def mark_finished(run_path: Path, info: dict[str, Any]) -> None:
    """Write ``finished.json`` atomically: ``--resume auto`` then leaves the finished run alone."""
    text = json.dumps(info, indent=2).encode()
    write_atomically(run_path / FINISHED_MARKER, lambda handle: handle.write(text))


def clear_finished(run_path: Path) -> None:
    """Forget that the run finished (a new ``fit`` into the same run folder)."""
    (run_path / FINISHED_MARKER).unlink(missing_ok=True)


def resolve_resume(value: str | None, checkpoints: Path, run_is_fixed: bool) -> Path | None:
    """Turn ``--resume auto|never|PATH`` into the checkpoint to continue from (``None``: start fresh).

    ``auto`` needs a fixed ``--run`` (otherwise every invocation is a new run) and returns the newest
    valid checkpoint of that run, or ``None`` for a run that has none yet. ``PATH`` is a checkpoint file,
    or a run folder / checkpoint folder whose newest valid checkpoint is used.

    Raises:
        UsageError: ``auto`` without ``--run``, or a ``PATH`` that is missing or holds no valid checkpoint.
    """
    from litforge.errors import UsageError

    if value in (None, "never"):  # a saved config.yaml stores ``resume: null``: start fresh
        return None
    if value == "auto":
        if not run_is_fixed:
            raise UsageError(
                "--resume auto needs a fixed run name, e.g. --run my-run (without it every command "
                "starts a new version_N run, so there is nothing to resume)"
            )
        found = find_resume_checkpoint(checkpoints)
        if found is None and (kept := _resumable_candidates(checkpoints)):
            # starting fresh would train over them (and replace best/last): the user decides
            raise UsageError(
                f"--resume auto: none of the {len(kept)} checkpoints in {checkpoints} loads (the warnings above "
                "say why); it would start fresh over them: --overwrite starts the run again, --resume PATH "
                "names a checkpoint"
            )
        return found
    path = Path(value)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = find_resume_checkpoint(folder)
        if found is None:
            raise UsageError(f"--resume {value}: no valid checkpoint in {folder}")
        return found
    if not path.is_file():
        close = difflib.get_close_matches(value, ["auto", "never"], n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"--resume: expected auto, never or a checkpoint path; no such file: {value}{hint}")
    try:
        load_checkpoint_safely(path)
    except CheckpointUnreadable as error:
        raise UsageError(f"--resume: {error}") from None
    return path
