#!/usr/bin/env bash
# Issue 17's GPU measurements in one command, for a session lent a GPU (docs/performance.md, "On a GPU"):
#
#   bash benchmarks/gpu_session.sh      # ~6 min on one H200; results in $OUT (the device tool's) or benchmarks/results
#
# 1. benchmarks/gpu_throughput.py at GPT-2-small shape, bf16-mixed: a hand-written loop, plain Lightning and
#    `litforge fit`, eager and compiled, periodic checkpoints in the background, activation checkpointing.
# 2. benchmarks/async_checkpoint.py with a 1 GB state on the GPU: what each way of saving blocks.
#
# The device image has torch, Lightning, torchmetrics and transformers; litforge also needs
# jsonargparse[signatures] and torchdata, which travel as wheels in .whl/ (4 pure-Python wheels, ~1 MB;
# the command that fetches them is in docs/performance.md). Each step runs even if the one before failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import jsonargparse, torchdata, litforge" || { echo "missing packages: carry .whl/ (docs/performance.md)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv >"$out/gpu_session_device.txt" 2>&1
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >>"$out/gpu_session_device.txt"

status=0
python3 benchmarks/gpu_throughput.py --out "$out/gpu_throughput.json" 2>&1 | tee "$out/gpu_throughput.log" || status=1
python3 benchmarks/async_checkpoint.py --mb 1000 --saves 3 --device cuda --out "$out/async_checkpoint_gpu.json" \
  2>&1 | tee "$out/async_checkpoint_gpu.log" || status=1
cat "$out/gpu_session_device.txt"
exit $status
