"""FLOPs per training batch and the accelerator's peak: the model FLOPs utilisation (MFU) in ``perf.json``.

litforge fit --config configs/transformer.yaml --trainer.precision bf16-mixed   # on an H100, H200 or A100
"""

from __future__ import annotations

from contextlib import ExitStack

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) 16-bit tensor-core peaks per GPU, from NVIDIA's datasheets; the first name found in
# the device's name wins. Lightning's table (lightning.fabric.utilities.throughput) lists the H200 with its
# sparse figure and does not recognise the plain "NVIDIA H200". NVL parts (other clocks): not listed.
DENSE_16BIT_PEAK_FLOPS: tuple[tuple[str, float | None], ...] = (
    ("H200 NVL", None),
    ("H200", 989e12),
    ("H100 NVL", None),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM: "NVIDIA H100 80GB HBM3"
    ("A100", 312e12),  # SXM and PCIe
)
SIXTEEN_BIT_PRECISIONS = ("bf16-mixed", "bf16-true", "16-mixed", "16-true")


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense 16-bit peak in FLOP/s when training runs in 16-bit precision on a GPU listed in
    ``DENSE_16BIT_PEAK_FLOPS``; ``None`` otherwise (a CPU, 32-bit, an unlisted GPU)."""
    if device.type != "cuda" or str(precision) not in SIXTEEN_BIT_PRECISIONS:
        return None
    name = torch.cuda.get_device_name(device).lower()
    return next((peak for key, peak in DENSE_16BIT_PEAK_FLOPS if key.lower() in name), None)


class StepFlopCounter:
    """Counts the FLOPs one training step executes (forward, backward: matrix products, convolutions,
    attention) with torch's ``FlopCounterMode``, between ``start`` and ``stop``.

    The step runs eager (``torch.compiler.set_stance("force_eager")``): under a dispatch mode such as the
    counter, Dynamo skips a compiled frame for good, and compiled code would then stay eager for the whole
    run. Compilation happens at the next step instead. With activation checkpointing the recomputed
    forward is counted too (what the hardware did).
    """

    def __init__(self) -> None:
        self.flops: int | None = None
        self._stack: ExitStack | None = None
        self._counter: FlopCounterMode | None = None

    def start(self) -> None:
        stack = ExitStack()
        stack.enter_context(torch.compiler.set_stance("force_eager"))
        self._counter = stack.enter_context(FlopCounterMode(display=False))
        self._stack = stack

    def stop(self) -> None:
        """End the count (also when the step failed); ``flops`` holds it."""
        if self._stack is None or self._counter is None:
            return
        self._stack.close()
        self.flops = int(self._counter.get_total_flops())
        self._stack = self._counter = None

    @property
    def counting(self) -> bool:
        return self._stack is not None
