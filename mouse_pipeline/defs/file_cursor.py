"""What the inbox and landing sensors share: files that have settled, and exact copies of them.

A file dropped into a watched folder may still be being written. A file is
*settled* once its size and modification time have stayed the same for
``settle_seconds`` (by default two sensor intervals); only then is it
reported, once per content. Writers can also use the rename convention:
``*.part``, ``*.tmp`` and hidden files (``.name``) are never read.

A reported file is first copied into a staging folder under the name of
its sha256, hashing while copying, so the run that follows reads exactly
the bytes the sensor saw, whatever happens to the original afterwards.
"""

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mouse_pipeline.outputs import file_sha256

#: File names a sensor never reads: files still being written under a temporary name.
IGNORED_SUFFIXES = (".part", ".tmp")

#: The sensors' clock (a test replaces it to simulate time passing).
clock = time.time


def ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES)


@dataclass(frozen=True)
class SettledFile:
    """A new or changed file that has settled, and its staged copy (named by its sha256)."""

    source: Path
    staged: Path
    sha256: str


def stage_copy(path: Path, staging: Path) -> tuple[Path, str]:
    """Copy ``path`` into ``staging/<sha256>-<unique><suffix>``, hashing while copying; return the copy and
    its hash. Each copy is its run's own, so a run can delete it without touching another's."""
    staging.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = staging / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(path, "rb") as source, open(tmp, "wb") as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
    staged = staging / f"{digest.hexdigest()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    os.replace(tmp, staged)
    return staged, digest.hexdigest()


def settled_files(folder: Path, pattern: str, cursor: str | None, staging: Path, settle_seconds: float,
                  now: float) -> tuple[list[SettledFile], str]:
    """Files of ``folder`` matching ``pattern`` that are new or changed since ``cursor`` and have settled,
    staged into ``staging``; and the cursor to store next.

    The cursor keeps, per file, the size and mtime last seen, since when they
    have not changed, and the sha256 last reported: an unchanged file is
    hashed once and never reported twice; a touched file with the same
    content is not reported; a changed file is reported again once it settles.
    """
    seen: dict[str, dict] = json.loads(cursor) if cursor else {}
    present = {}
    settled = []
    for path in sorted(p for p in folder.glob(pattern) if p.is_file() and not ignored(p)):
        stat = path.stat()
        key = str(path.resolve())
        state = dict(seen.get(key, {}))
        shape = [stat.st_size, stat.st_mtime_ns]
        if state.get("shape") != shape:
            state.update(shape=shape, since=now)  # new, or still changing
        elif now - state["since"] >= settle_seconds and state.get("done_shape") != shape:
            staged, digest = stage_copy(path, staging)
            after = path.stat()
            if [after.st_size, after.st_mtime_ns] != shape:  # changed while copying: wait for it to settle
                staged.unlink()
                state.update(shape=[after.st_size, after.st_mtime_ns], since=now)
            elif digest == state.get("sha256"):  # touched, same content
                staged.unlink()
                state["done_shape"] = shape
            else:
                state.update(done_shape=shape, sha256=digest)
                settled.append(SettledFile(path.resolve(), staged, digest))
        present[key] = state
    return settled, json.dumps(present, sort_keys=True)


def verify_staged(path: str | Path, sha256: str) -> None:
    """Raise ValueError when the staged file is missing or not the bytes the sensor saw."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: the staged copy is gone; drop the file into the folder again")
    actual = file_sha256(path)
    if actual != sha256:
        raise ValueError(f"{path}: sha256 {actual[:12]}… is not the {sha256[:12]}… the sensor saw; "
                         "the staged copy was changed, drop the file into the folder again")


def remove_staged(path: str | Path) -> None:
    """Delete a staged copy once its run has used it (a failed run keeps it for inspection)."""
    Path(path).unlink(missing_ok=True)

