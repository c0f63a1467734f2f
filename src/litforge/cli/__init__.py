"""The ``litforge`` command: a small dispatcher that routes to one module per subcommand.

Each subcommand module exposes ``main(argv: list[str]) -> int | None`` and a module docstring whose
first line is its summary. Adding a subcommand is one module plus one line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import importlib
import signal
import sys

from litforge import __version__, working_folder
from litforge.cli.errors import EXIT_USAGE, run_guarded
from litforge.processes import closed_pipe
from litforge.processes.heap import skip_exit_collection

# name -> (module, one-line summary shown by ``litforge --help``)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("litforge.cli.train", "train a model from a config (default: the digits classifier)"),
    "validate": ("litforge.cli.train", "run the validation loop on a checkpoint"),
    "test": ("litforge.cli.train", "run the test loop on a checkpoint"),
    "predict": ("litforge.cli.train", "write predictions.csv for a checkpoint (or an exported artifact)"),
    "tune": ("litforge.cli.tune", "hyperparameter search with Optuna or Ray Tune on the same config"),
    "export": (
        "litforge.cli.export",
        "export a checkpoint to ONNX, torch.export (.pt2) or TorchScript, verified",
    ),
    "serve": ("litforge.cli.serve", "HTTP inference server over an exported model, with dynamic batching"),
    "check": ("litforge.cli.check", "run the standard sanity checks on a module and datamodule"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items())
    return (
        f"usage: litforge <command> [options]     (litforge {__version__})\n\n"
        "The production layer for PyTorch Lightning.\n\ncommands:\n"
        f"{rows}\n\n"
        "Run 'litforge <command> --help' for a command's options. '--debug' (or LITFORGE_DEBUG=1)\n"
        "shows tracebacks. Exit codes: 0 success, 1 the job failed, 2 bad input, 75 stopped by\n"
        "SIGTERM/SIGUSR1 after a checkpoint, 130 stopped by Ctrl+C (--resume auto continues both).\n"
    )


class _Terminated(BaseException):
    """SIGTERM while litforge imports its libraries (a BaseException, as KeyboardInterrupt: libraries catch
    ``Exception`` around optional imports, and must not swallow it)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _with_run_path_split(name: str, args: list[str]) -> list[str]:
    """``--run EXPERIMENT/RUN`` (as litforge lists runs) as ``--experiment EXPERIMENT --run RUN``; ``--root
    DIR`` as ``--trainer.default_root_dir DIR`` where the trainer's root is the folder of runs."""
    if name == "serve":  # no runs; and it need not import Lightning
        return args
    from litforge.engine.run_dir import root_flag_as_trainers, split_run_path

    if name in {"fit", "validate", "test", "predict", "check"}:
        args = root_flag_as_trainers(args)
    return split_run_path(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``litforge`` console script and ``python -m litforge``."""
    entry_point = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage(), end="")
        sys.exit(0 if argv else EXIT_USAGE)
    if argv[0] in {"-V", "--version"}:
        print(f"litforge {__version__}")
        sys.exit(0)
    name, rest = argv[0], [a for a in argv[1:] if a != "--debug"]  # run_guarded reads it from argv
    if name not in SUBCOMMANDS:
        from difflib import get_close_matches

        hint = get_close_matches(name, SUBCOMMANDS, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        print(
            f"litforge: error: unknown command '{name}'{suggestion}; see 'litforge --help'", file=sys.stderr
        )
        sys.exit(EXIT_USAGE)
    working_folder.remember()  # user modules import from it; errors name it
    closed_pipe.install()  # `litforge fit | head` goes on training once head has what it wanted
    # the imports take seconds: a Ctrl+C or SIGTERM here is as clean as one during the job, and says so
    previous = signal.signal(signal.SIGTERM, _terminated) if entry_point else None
    try:
        if name in {"fit", "validate", "test", "predict", "tune", "check"}:
            from litforge.engine import runtime

            runtime.install()
        module = importlib.import_module(SUBCOMMANDS[name][0])
    except KeyboardInterrupt:
        print("litforge: interrupted by Ctrl+C while starting; nothing was done", file=sys.stderr)
        sys.exit(130)
    except _Terminated:
        print("litforge: stopped by SIGTERM while starting; nothing was done", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        run_guarded(lambda: module.main(name, _with_run_path_split(name, rest)), argv)
    finally:
        if entry_point:  # the process ends here; a caller in the same process may go on
            skip_exit_collection()
