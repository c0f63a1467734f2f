"""``litforge fit|validate|test|predict``: Lightning's subcommands driven by a YAML config.

litforge fit                                        # the packaged default: digits classifier
litforge fit --config configs/digits.yaml --trainer.max_epochs 5 --run my-run
litforge test --ckpt_path best                      # newest run's best checkpoint
litforge predict --ckpt_path runs/classifier/version_0/checkpoints/best.ckpt
litforge predict --artifact runs/classifier/version_0/export --input rows.csv   # from an export folder
"""

from __future__ import annotations

import errno

from litforge.errors import LitforgeError, UsageError

_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)


def _given(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(f"{flag}=") for a in argv)


def main(command: str, argv: list[str]) -> int:
    """Run one Lightning subcommand through ``LitforgeCLI``."""
    if command == "predict" and _given(argv, "--artifact"):
        from litforge.cli.predict_artifact import main as predict_from_artifact

        return predict_from_artifact(command, argv)
    if command == "predict" and (flag := next((f for f in ("--input", "--output") if _given(argv, f)), None)):
        raise UsageError(
            f"{flag} goes with --artifact EXPORT_DIR (predict on a file from an export folder: litforge export "
            "--ckpt_path CKPT writes one); predict from a checkpoint runs the datamodule's predict_dataloader "
            "and writes <run>/predictions.csv"
        )
    from litforge.engine.api import run_command
    from litforge.engine.failures import (
        UserCodeFailed,
        describe,
        is_trainer_misconfiguration,
        missing_loader,
        optimizer_groups_changed,
        unlogged_monitor,
        unlogged_scheduler_monitor,
    )

    try:
        run_command([command, *argv])
    except LitforgeError:
        raise
    except Exception as error:  # the user's code (or a library it called) failed while the job ran
        if isinstance(error, OSError) and error.errno in _NOT_ALLOWED and error.filename:
            # a read-only run folder, a root that is a file, a file the user may not read: their setup
            raise UsageError(f"{command}: cannot use {error.filename}: {error.strerror}") from error
        if (unlogged := unlogged_monitor(error)) is not None:  # a config's callback with a misspelt monitor
            raise UsageError(
                f"{command}: {unlogged}; fix its monitor (what trained so far stays in the run folder: "
                "--overwrite replaces it)"
            ) from error
        if (scheduler := unlogged_scheduler_monitor(error)) is not None:  # the user's code, not a setting
            raise UserCodeFailed(f"{command}: {scheduler}") from error
        if (missing := missing_loader(error, command)) is not None:
            raise UsageError(missing) from error
        if (changed := optimizer_groups_changed(error, command)) is not None:
            raise UsageError(changed) from error
        if is_trainer_misconfiguration(error):
            # Lightning refusing the settings (a LearningRateMonitor without a logger, limit_train_batches
            # below one batch): a bad config, not a bug in the user's code
            raise UsageError(f"{command}: trainer settings: {describe(error)}") from error
        raise UserCodeFailed.from_exception(command, error) from error
    return 0
