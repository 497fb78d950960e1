"""Writing files people and programs rely on: atomically, consistently, and safe to open in a spreadsheet.

* :func:`write_atomic` writes to a temporary file in the target's folder, then
  ``os.replace``: a reader (or a kill) never sees half a file, and the
  previous version stays intact until the new one is complete.
  :func:`remove_stale_temporaries` deletes what killed writers left behind.
* :func:`escape_formulas` neutralises cells that a spreadsheet would run as a
  formula (OWASP's CSV-injection advice): a text cell that begins with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
  Numbers stay numbers, so a user id such as ``-2416201411472988629`` is
  written as it is. :func:`write_csv` applies it unless asked not to.
* :func:`publish_folder` writes the files of one result into a fresh folder
  with a ``manifest.json`` (row counts and sha256 of every file) written
  last, then moves a ``latest`` link to it in one atomic step
  (:func:`point_link`), so the files a reader finds through ``latest`` always
  belong together.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

#: Characters that make a spreadsheet read a text cell as a formula (OWASP).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_TEMP_MARK = ".tmp-"
MANIFEST = "manifest.json"
LATEST = "latest"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it onto ``path`` atomically.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temporary files of killed writers (``.<name>.tmp-*``) in ``folder`` (not recursive) that are
    older than ``older_than_s`` seconds; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for path in folder.glob(f".*{_TEMP_MARK}*"):
        try:
            if path.lstat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    A text cell starting with one of :data:`FORMULA_TRIGGERS` is prefixed with
    ``'`` unless it is a plain number (``-12``, ``+3.5``, ``-2.4e18``). Numeric
    columns are left untouched.
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_TRIGGERS, na=False) & ~text.str.fullmatch(_NUMBER.pattern, na=False)
        if risky.any():
            out[column] = values.astype(object).where(~risky.to_numpy(), "'" + text.astype(object))
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, escape: bool = True, **to_csv) -> Path:
    """Write ``frame`` as CSV atomically; formula cells escaped unless ``escape`` is False."""
    data = escape_formulas(frame) if escape else frame
    return write_atomic(path, lambda tmp: data.to_csv(tmp, index=False, **to_csv))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_tables(folder: Path, tables: Mapping[str, pd.DataFrame], info: Mapping, escape: bool) -> dict:
    files = {}
    for file_name, frame in tables.items():
        path = write_csv(frame, folder / file_name, escape=escape)
        files[file_name] = {"rows": len(frame), "sha256": file_sha256(path)}
    manifest = {**info, "files": files, "formulas_escaped": escape}
    write_atomic(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1, default=str)))
    return manifest


def write_result_files(folder: str | Path, tables: Mapping[str, pd.DataFrame], info: Mapping,
                       escape: bool = True) -> dict:
    """Write ``tables`` (file name -> frame) as CSVs into an existing or new ``folder``, each atomically,
    then ``manifest.json`` last (``info`` plus each file's row count and sha256); return the manifest.

    Other files of the folder are left alone. A reader that checks the manifest
    (:func:`read_manifest`) never mixes files of two results.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    return _write_tables(folder, tables, info, escape)


def write_result_folder(folder: str | Path, tables: Mapping[str, pd.DataFrame], info: Mapping,
                        escape: bool = True) -> Path:
    """Write a result into a temporary folder beside ``folder`` (manifest last), then put it in place of
    ``folder`` by renaming: readers see the old result or the whole new one."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent)
    staging = _temporary(folder)
    staging.mkdir()
    try:
        _write_tables(staging, tables, info, escape)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def publish_folder(root: str | Path, name: str, tables: Mapping[str, pd.DataFrame], info: Mapping,
                   escape: bool = True, keep: int = 10) -> Path:
    """Write a result into ``root/runs/<name>/`` (:func:`write_result_folder`), then point the link
    ``root/latest`` at it in one atomic step; keep the ``keep`` newest result folders. Returns the folder."""
    root = Path(root)
    remove_stale_temporaries(root)
    folder = write_result_folder(root / "runs" / name, tables, info, escape)
    point_link(root / LATEST, Path("runs") / name)
    prune_oldest(root / "runs", keep, current=folder)
    return folder


def point_link(link: str | Path, target: str | Path) -> Path:
    """Make ``link`` a symbolic link to the folder ``target`` (relative to the link's folder) in one
    atomic step: a reader finds the old target or the new one, never nothing. Returns the link."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(link)
    tmp.symlink_to(Path(target), target_is_directory=True)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return link


def prune_oldest(folder: str | Path, keep: int, current: str | Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest entries (files or folders, by modification time; hidden ones
    ignored) of ``folder``, never ``current``. Returns what was deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    deleted = []
    for old in entries[keep:]:
        if current is not None and old == Path(current):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
        deleted.append(old)
    return deleted


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a published folder, checked against its files.

    Raises ValueError naming the file when a file is missing or differs from the manifest (a copy
    interrupted outside this module, or a file edited by hand).
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST}; the result was not published completely")
    manifest = json.loads(manifest_path.read_text())
    for file_name, entry in manifest["files"].items():
        path = folder / file_name
        if not path.is_file() or file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path}: missing or not the file the manifest lists (sha256 differs)")
    return manifest
