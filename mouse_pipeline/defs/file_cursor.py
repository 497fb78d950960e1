"""What the inbox and landing sensors share: which files of a folder are new or changed."""

import json
from pathlib import Path

from mouse_pipeline.tracking import file_sha256


def changed_files(folder: Path, pattern: str, cursor: str | None) -> tuple[list[tuple[Path, str]], str]:
    """Files of ``folder`` matching ``pattern`` that are new or changed since ``cursor``, with their
    sha256, and the cursor to store next.

    The cursor maps each file to the (size, mtime, sha256) last seen, so an
    unchanged file is hashed once and never reported twice; a file whose
    content changed is reported again, one merely touched is not.
    """
    seen: dict[str, list] = json.loads(cursor) if cursor else {}
    changed = []
    for path in sorted(folder.glob(pattern)):
        stat = path.stat()
        key = str(path.resolve())
        previous = seen.get(key)
        if previous and previous[:2] == [stat.st_size, stat.st_mtime_ns]:
            continue  # untouched since last seen: not even re-hashed
        digest = file_sha256(path)
        seen[key] = [stat.st_size, stat.st_mtime_ns, digest]
        if previous and previous[2] == digest:
            continue  # touched but identical content
        changed.append((path.resolve(), digest))
    return changed, json.dumps(seen, sort_keys=True)
