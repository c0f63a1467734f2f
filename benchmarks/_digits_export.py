"""Shared by the export/serve benchmarks: a trained digits checkpoint exported to every format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def litforge(*args: str, cwd: Path) -> None:
    """Run the real console script; raise with its output when it fails."""
    exe = Path(sys.executable).with_name("litforge")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "litforge"]
    proc = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"litforge {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def digits_export(workdir: Path, ckpt: Path | None, formats: str = "onnx,pt2,torchscript") -> Path:
    """Export ``ckpt`` (default: train the packaged digits default for 5 epochs) into ``workdir/export``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if ckpt is None:
        litforge("fit", "--trainer.max_epochs", "5", "--run", "bench", cwd=workdir)
        ckpt = workdir / "runs" / "classifier" / "bench" / "checkpoints" / "best.ckpt"
    out = workdir / "export"
    litforge("export", "--ckpt", str(ckpt), "--format", formats, "--out", str(out), cwd=workdir)
    return out
