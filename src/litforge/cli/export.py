"""``litforge export``: a checkpoint -> verified ONNX, torch.export (.pt2) and TorchScript artifacts.

litforge export --ckpt runs/classifier/version_0/checkpoints/best.ckpt
litforge export --run my-run                  # that run's best.ckpt (else last.ckpt)
litforge export --ckpt best --format onnx,pt2 --out exports/digits --benchmark   # the newest run's best
litforge export --run ft --model.backbone_path moved/backbone.pt   # an init argument over the checkpoint's
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import shutil
import sys
from pathlib import Path
from typing import Any

from litforge.cli.command_parser import CommandParser
from litforge.cli.errors import JobFailed, UsageError

EPILOG = """formats:
  onnx         ONNX via torch.onnx.export(dynamo=True), verified in onnxruntime (fastest on CPU)
  pt2          torch.export ExportedProgram, verified with torch.export.load (PyTorch-native, recommended)
  torchscript  LEGACY: torch.jit.trace, verified with torch.jit.load (deprecated upstream; older LibTorch only)

Every artifact is reloaded in its own runtime and compared with the eager model on a real batch and on
random batches of 1, 7 and 64 rows (fp32 tolerance 1e-5). Any mismatch: exit 1 with the figures.
export.json beside the artifacts records files, sha256, shapes, labels, preprocessing and versions.
"""


def build_parser() -> CommandParser:

    parser = CommandParser(
        prog="litforge export", description=__doc__.splitlines()[0].replace("``", ""), epilog=EPILOG
    )
    parser.add_argument(
        "--ckpt",
        "--ckpt_path",
        default=None,
        help="Lightning checkpoint (.ckpt) to export, or best / last: that checkpoint of --run, else of the "
        "run that wrote one last (as test --ckpt_path picks it)",
    )
    parser.add_argument("--run", default=None, help="export this run's best.ckpt (else last.ckpt)")
    parser.add_argument(
        "--experiment", default=None, help="the experiment of --run (default: any that has it)"
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="the runs folder of --run / best / last (default: runs)"
    )
    parser.add_argument(
        "--format",
        default=None,
        help="comma-separated formats: onnx, pt2, torchscript (legacy) (default: every one of the three that "
        "exports; one that cannot be traced is left out with a note, a parity failure still fails)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="export folder (default: <run>/export next to checkpoints/)"
    )
    parser.add_argument(
        "--model-class",
        default=None,
        help="LightningModule class path when the checkpoint has no run config (package.module.Class)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the run's config.yaml that built the model (default: <run>/config.yaml of the checkpoint's "
        "run folder); needed for a copied checkpoint whose model takes injected objects (--model.net)",
    )
    parser.add_argument(
        "--tolerance",
        type=_positive_float,
        default=None,
        help="parity bound per value, absolute and relative: |artifact - eager| <= T + T*|eager| (default by "
        "the output's dtype: 1e-5 for float32); for a runtime less precise on some operator (ONNX Runtime's "
        "STFT), recorded in export.json",
    )
    parser.add_argument(
        "--benchmark", action="store_true", help="also measure batch-1 latency and batch-256 throughput"
    )
    return parser


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}")
    return number


def default_out(ckpt: Path) -> Path:
    """``<run>/export`` for a checkpoint in a run folder, else ``export/`` next to the checkpoint."""
    from litforge.engine.run_dir import RunDir

    run = RunDir.of_checkpoint(ckpt)
    return (run.path if run is not None else ckpt.resolve().parent) / "export"


def checkpoint_to_export(args: argparse.Namespace) -> Path:
    """``--ckpt FILE``, or the checkpoint ``--ckpt best|last`` / ``--run`` / ``--experiment`` name."""
    from litforge.engine.run_dir import CHECKPOINT_ALIASES, DEFAULT_ROOT, checkpoint_of_run

    by_run = args.run is not None or args.experiment is not None or args.root is not None
    if args.ckpt is not None and args.ckpt not in CHECKPOINT_ALIASES:
        if by_run:
            raise UsageError(
                f"--ckpt {args.ckpt} is a file: it names its run itself (drop --run/--experiment/--root)"
            )
        alias = difflib.get_close_matches(args.ckpt, CHECKPOINT_ALIASES, n=1, cutoff=0.5)
        if alias and not Path(args.ckpt).exists() and Path(args.ckpt).parent == Path():
            raise UsageError(f"--ckpt: no such checkpoint file: {args.ckpt} (did you mean {alias[0]}?)")
        return Path(args.ckpt)
    if args.ckpt is None and not by_run:
        raise UsageError("export: name the checkpoint: --ckpt FILE|best|last or --run NAME")
    path = checkpoint_of_run(args.root or Path(DEFAULT_ROOT), args.ckpt, args.run, args.experiment)
    print(f"litforge: exporting {path}", file=sys.stderr, flush=True)
    return path


def model_arguments(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``--model.NAME VALUE`` (or ``=VALUE``) pulled out of ``argv``, each VALUE read as YAML as fit reads it
    (``0.1``, ``true``, ``moved/backbone.pt``): the init arguments that win over the checkpoint's (a file a
    path argument names that has moved since training); and the rest of ``argv``."""
    import yaml

    overrides: dict[str, Any] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if not flag.startswith("--model.") or flag == "--model.":
            rest.append(arg)
            continue
        value = value if equals else next(args, None)
        if value is None or (not equals and value.startswith("--")):
            raise UsageError(f"{flag} expects a value")
        parsed = yaml.safe_load(value) if value else value
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string; fit casts it by the annotation
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        overrides[flag.removeprefix("--model.").removeprefix("init_args.")] = parsed
    return overrides, rest


def main(command: str, argv: list[str]) -> int:
    """Export, verify and report; exit 1 when an artifact disagrees with the eager model."""
    overrides, argv = model_arguments(argv)
    args = build_parser().parse_args(argv)
    from litforge.export.formats import FORMATS, parse_formats

    formats = parse_formats(args.format or ",".join(FORMATS))  # a bad --format before "exporting ..."
    args.ckpt = checkpoint_to_export(args)
    from litforge.export.exporter import export_module
    from litforge.export.loading import load_checkpoint
    from litforge.export.metadata import sha256
    from litforge.export.staging import keep_other_formats, publish, set_aside, staging_folder

    loaded = load_checkpoint(args.ckpt, args.model_class, args.config, overrides)
    out = args.out or default_out(args.ckpt)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    source = {
        "checkpoint": str(loaded.checkpoint),
        "checkpoint_sha256": sha256(loaded.checkpoint),
        "model_class": loaded.class_path,
        "datamodule_class": loaded.data_class_path,
        "notes": loaded.notes,
        **({"model_args": overrides} if overrides else {}),
    }
    with staging_folder(out) as stage:  # the previous export stays until this one is whole and verified
        result = export_module(
            loaded.module,
            stage,
            formats,
            classes=loaded.classes,
            real_batch=loaded.real_batch,
            real_inputs=loaded.real_inputs,
            predict_step_sigmoid=loaded.predict_step_sigmoid,
            feature_names=loaded.feature_names,
            text_max_length=loaded.text_max_length,
            source=source,
            benchmark=args.benchmark,
            tolerance=args.tolerance,
        )
        untraceable = [n for n in result.failed if "error" in result.metadata["formats"][n]]
        if args.format is None and result.failed == untraceable and len(untraceable) < len(formats):
            for name in untraceable:  # the default asks for every format that can be made
                error = result.metadata["formats"][name]["error"]
                print(
                    f"litforge: note: left out {name}: {error} (--format names the formats to require)",
                    file=sys.stderr,
                )
        elif result.failed:
            failed = out.with_name(f"{out.name}.failed")
            set_aside(stage, failed)
            _report(result.metadata, failed)
            formats = result.metadata["formats"]
            unexported = [name for name in result.failed if "error" in formats[name]]
            unequal = [name for name in result.failed if name not in unexported]
            reasons = [f"{name}: {formats[name]['error']}" for name in unexported]  # tracing or loading
            if unequal:
                figures = "; ".join(_failure(name, formats[name]["parity"]) for name in unequal)
                looser = "" if args.tolerance else " (--tolerance T sets a looser bound where you accept one)"
                reasons.append(f"parity check failed for {', '.join(unequal)}: {figures}{looser}")
            passed = [name for name in formats if name not in result.failed]
            if passed:
                reasons.append(f"{', '.join(passed)} passed: --format {','.join(passed)} exports those alone")
            kept = f"; the previous export in {out} is kept" if out.is_dir() else ""
            raise JobFailed(f"{'; '.join(reasons)} (details in {failed}/export.json{kept})")
        kept = keep_other_formats(stage, out)  # --format pt2 after an ONNX export of the same checkpoint
        dropped = publish(stage, out)
        shutil.rmtree(out.with_name(f"{out.name}.failed"), ignore_errors=True)  # an older attempt's leftovers
    _report(result.metadata, out)
    if kept:
        print(f"kept from the previous export of this checkpoint: {', '.join(kept)}")
    if dropped:
        print(f"removed from the previous export (not in --format): {', '.join(dropped)}")
    return 0


def _report(record: dict, out: Path) -> None:
    print(f"{'format':<12} {'file':<22} {'max abs err':>12} {'of tolerance':>12}  parity")
    for name, entry in record["formats"].items():
        parity = entry["parity"]
        verdict = "ok" if parity["passed"] else "FAILED"
        if "error" in entry or parity["max_abs_error"] is None:
            reason = entry.get("error") or _failure(name, parity)
            print(f"{name:<12} {entry['file'] or '-':<22} {'-':>12} {'-':>12}  FAILED ({reason})")
            continue
        print(
            f"{name:<12} {entry['file']:<22} {parity['max_abs_error']:>12.3g} {_share(parity):>12}  {verdict}"
        )
    if record.get("benchmark"):
        print(f"\n{'runtime':<12} {'batch-1 ms (median)':>20} {'batch-256 rows/s':>18} {'vs eager':>9}")
        for name, figures in record["benchmark"]["results"].items():
            print(
                f"{name:<12} {figures['latency_ms_batch1']:>20.3f} {figures['throughput_rows_per_s']:>18.0f}"
                f" {figures['speedup_batch1_vs_eager']:>8.2f}x"
            )
    print(f"export folder: {out}\nmetadata: {out / 'export.json'}")
    sys.stdout.flush()


def _share(parity: dict) -> str:
    """The worst error as a share of its element's tolerance (atol + rtol * |eager|): 100 % is the limit."""
    used = parity.get("tolerance_used")  # absent from an export.json written before it was recorded
    return "-" if used is None else f"{used:.0%}" if used >= 0.01 else "<1%"


def _failure(name: str, parity: dict) -> str:
    bad = [c for c in parity["cases"] if not c["passed"]]
    first = bad[0] if bad else {}
    if "error" in first or first.get("max_abs_error") is None:
        return f"{name} {first.get('case')}: {first.get('error', 'non-finite output')}"
    return (
        f"{name} {first.get('case')}: max abs error {first.get('max_abs_error'):.3g}, "
        f"max rel error {first.get('max_rel_error'):.3g} (atol {first.get('atol')}, rtol {first.get('rtol')})"
    )
