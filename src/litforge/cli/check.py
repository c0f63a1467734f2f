"""``litforge check``: run the standard sanity checks on a module and datamodule before a long run.

litforge check                                   # the packaged default (digits classifier)
litforge check --config configs/digits.yaml --skip export
litforge check --model lightning.pytorch.demos.boring_classes.BoringModel \\
               --data lightning.pytorch.demos.boring_classes.BoringDataModule --only forward,gradients
"""

from __future__ import annotations

import sys
import time
import traceback

from litforge._compat.argparse import flag_suggestion
from litforge.cli.command_parser import CommandParser
from litforge.cli.errors import USER_INPUT_ERRORS, JobFailed, UsageError, debug_enabled

STATUS_STYLE = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow", "ERROR": "bold red"}


def build_parser() -> CommandParser:
    from litforge.testing import CHECKS
    from litforge.testing.model_checks import OVERFIT_STEPS, OVERFIT_THRESHOLD

    parser = CommandParser(
        prog="litforge check",
        # parse_known_args passes the model/data options on to the config parser; the usage names them too.
        usage=(
            "litforge check [-h] [--config FILE | --run NAME] [--model CLASS_PATH] [--data CLASS_PATH]\n"
            "                      [--model.KEY VALUE ...] [--only NAMES] [--skip NAMES] [--seed SEED]\n"
            "                      [--overfit-steps OVERFIT_STEPS] [--overfit-threshold OVERFIT_THRESHOLD]\n"
            "                      [--accelerator ACCELERATOR] [--debug]"
        ),
        description=(
            "Run the standard sanity checks on the model and datamodule a config builds, print a table and\n"
            "exit 0 when every check passes or is skipped, 1 otherwise. The model and data come from the\n"
            "same options as 'litforge fit': --config FILE (default: the packaged digits classifier),\n"
            "--model CLASS_PATH, --data CLASS_PATH and dotted overrides such as --model.lr 0.01; --run NAME\n"
            "checks the model and data of an earlier run (its config.yaml).\n\n"
            "checks:\n" + "\n".join(f"  {name:<19} {check.catches}" for name, check in CHECKS.items())
        ),
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAMES",
        help="run only these checks (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAMES",
        help="skip these checks (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed set before every check (default: the config's seed_everything, else 0)",
    )
    parser.add_argument(
        "--overfit-steps",
        type=int,
        default=OVERFIT_STEPS,
        help=f"steps allowed to overfit one batch; it stops once the loss is low enough (default {OVERFIT_STEPS})",
    )
    parser.add_argument(
        "--overfit-threshold",
        type=float,
        default=OVERFIT_THRESHOLD,
        help=f"loss the overfit check must reach (default {OVERFIT_THRESHOLD})",
    )
    parser.add_argument(
        "--accelerator", default="cpu", help="accelerator of the checks' tiny trainers (default cpu)"
    )
    return parser


def main(command: str, argv: list[str]) -> int:
    """Parse ``argv``, build the model and datamodule from the config, run the checks, print the table."""
    from litforge.testing import Subject, select_checks

    options, config_args = build_parser().parse_known_args(argv)
    only, skip = _names(options.only), _names(options.skip)
    if options.only and not only:
        raise UsageError("--only: no check named (give names such as --only forward,overfit)")
    try:
        selected = select_checks(only or None, skip)
    except KeyError as error:
        raise UsageError(error.args[0]) from None
    if not selected:
        raise UsageError(f"no check left to run: --skip {','.join(skip)} removes every one --only names")
    model, datamodule, configured_seed = _build(config_args)
    seed = next(s for s in (options.seed, configured_seed, 0) if s is not None)
    subject = Subject(model, datamodule, seed=seed, trainer_kwargs={"accelerator": options.accelerator})
    overfit = {"steps": options.overfit_steps, "threshold": options.overfit_threshold}
    start = time.perf_counter()
    results = _run_with_progress(selected, subject, {"overfit": overfit})
    _print_table(
        type(model).__name__, type(datamodule).__name__ if datamodule else "its own loaders", results
    )
    failed = [r.name for r in results if not r.ok]
    counts = {status: sum(r.status == status for r in results) for status in STATUS_STYLE}
    summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    print(f"{summary} in {time.perf_counter() - start:.1f} s", flush=True)
    if failed and debug_enabled(sys.argv):  # each failure's own traceback, where it raised
        for result in results:
            if not result.ok and result.error is not None:
                print(f"\n--- {result.name}: {result.status} ---", file=sys.stderr)
                traceback.print_exception(result.error, file=sys.stderr)
    if failed:
        raise JobFailed(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
    return 0


def _run_with_progress(selected: list, subject: object, options: dict) -> list:
    """Each check in turn; on a terminal, a transient line names the one running (an overfit of a
    pretrained encoder can take minutes)."""
    from rich.console import Console

    from litforge.testing.registry import run_check

    console = Console(stderr=True)
    if not console.is_terminal:
        return [run_check(check, subject, **options.get(check.name, {})) for check in selected]
    results = []
    with console.status("") as status:
        for number, check in enumerate(selected, 1):
            status.update(f"check {number}/{len(selected)}: {check.name} ({check.catches})")
            results.append(run_check(check, subject, **options.get(check.name, {})))
    return results


def _names(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _build(config_args: list[str]) -> tuple[object, object, int | None]:
    from litforge._compat.lightning_cli import quiet_seeding
    from litforge.engine.api import instantiate_model_and_data

    # Without Lightning's "Seed set to 42": every check builds its own model from the seed its row says.
    try:
        with quiet_seeding():
            return instantiate_model_and_data(config_args)
    except UsageError as error:  # a misspelt --only or --skip reaches the config parser
        if "did you mean" in str(error) or not (hint := flag_suggestion(build_parser(), str(error))):
            raise
        raise UsageError(f"{error}{hint}") from error
    except USER_INPUT_ERRORS as error:  # --debug shows the cause's traceback too
        raise UsageError(str(error)) from error


def _print_table(model: str, data: str, results: list) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # details quote code and paths (batch[1][i], a user's message): text, never rich markup
    table = Table(title=escape(f"litforge check: {model} on {data}"), title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in results:
        status = f"[{STATUS_STYLE[result.status]}]{result.status}[/]"
        table.add_row(result.name, status, f"{result.seconds:.2f} s", escape(result.detail))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
