"""What an evaluation subcommand's folder (``<run>/predict/``, ``<run>/test/``) held before the command, so
that a failed ``litforge predict``/``test``/``validate`` leaves it as it was: no config.yaml of a command
that produced nothing beside the predictions.csv of an earlier one that worked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

_KEEP_BYTES = 1 << 20  # config.yaml and hparams.yaml are kept whole; an event file only by name


@dataclass
class FolderSnapshot:
    folder: Path
    existed: bool
    names: set[str] = field(default_factory=set)
    contents: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def take(cls, folder: Path) -> FolderSnapshot:
        """Record ``folder``'s files (its top level: the subcommand writes no deeper)."""
        if not folder.is_dir():
            return cls(folder, existed=False)
        files = [p for p in folder.iterdir() if p.is_file()]
        return cls(
            folder,
            existed=True,
            names={p.name for p in files},
            contents={p.name: p.read_bytes() for p in files if p.stat().st_size <= _KEEP_BYTES},
        )

    def restore(self) -> None:
        """Remove the folder if the command made it; else remove the files it added and put back the small
        files it rewrote."""
        if not self.existed:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.is_file() and path.name not in self.names:
                path.unlink(missing_ok=True)
        for name, content in self.contents.items():
            path = self.folder / name
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
