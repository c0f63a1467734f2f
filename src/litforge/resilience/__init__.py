"""Crash-proof training: atomic checkpoint files (and, later, exact resume and signal handling)."""

from litforge.resilience.atomic_checkpoint_io import AtomicCheckpointIO

__all__ = ["AtomicCheckpointIO"]
