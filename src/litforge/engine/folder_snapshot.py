"""What a folder held before a command that may fail, so that the failure leaves it as it was.

A failed ``litforge predict``/``test``/``validate`` leaves ``<run>/<subcommand>/`` as it found it: no
config.yaml of a command that produced nothing beside the predictions.csv of an earlier one that worked. A
resume refused before it saved a checkpoint puts back the run's config.yaml, which ``--resume auto`` reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from litforge.atomic_files import write_atomically

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
        self.put_back(*self.contents)

    def put_back(self, *names: str) -> None:
        """Rewrite those of ``names`` (small files it recorded) that changed since, atomically."""
        for name in names:
            path, content = self.folder / name, self.contents.get(name)
            if content is not None and (not path.is_file() or path.read_bytes() != content):
                write_atomically(path, lambda handle, content=content: handle.write(content))
