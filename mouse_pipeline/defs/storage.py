"""Where asset values live: one file per asset and run, so concurrent runs never read each other's values.

Every stored value is written to ``<base_dir>/<asset key>/<run id>.<ext>``
(atomically). A step loads the value its own run produced when there is one,
else the value of the asset's latest materialisation (a run that re-uses
upstream values from earlier runs), else, in an instance without that
history (``dagster asset materialize`` without ``DAGSTER_HOME``), the newest
stored value. Two runs on one data folder thus each
read their own in-flight values. The few newest files per asset are kept.

* :class:`RunScopedPickleIOManager` pickles any value (the default IO manager);
* :class:`ParquetFrameIOManager` stores pandas frames as Parquet, which both
  feature engines read; with ``lazy=True`` it hands out :class:`EventTable`
  handles, so a Spark step reads the file itself and the events never pass
  through the driver's memory.

A missing or corrupt stored value fails with one line that names the file
and says which asset to materialise again.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mouse_pipeline.outputs import remove_stale_temporaries, write_atomic

#: Stored values kept per asset (the newest; older runs' files are deleted).
KEEP_PER_ASSET = 3


class CorruptStoreError(dg.Failure):
    """A stored value cannot be read back."""


def _corrupt(path: Path, asset: str, exc: Exception) -> CorruptStoreError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CorruptStoreError(f"{path}: cannot be read ({reason}); materialise {asset} again to rewrite it")


@dataclass(frozen=True)
class EventTable:
    """A stored table of ``asset``: its Parquet path, read on demand."""

    path: Path
    asset: str = ""

    @property
    def rows(self) -> int:
        """Row count from the Parquet footer (reads no data)."""
        try:
            return pq.ParquetFile(self.path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(self.path, self.asset, exc) from exc

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        try:
            return pd.read_parquet(self.path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(self.path, self.asset, exc) from exc


def table_path(base_dir: str | Path, asset_key: dg.AssetKey, partition_key: str | None = None) -> Path:
    """``<base_dir>/<asset key path>[/<partition_key>].parquet``: tables written outside the IO managers
    (training batches, Spark output)."""
    folder = Path(base_dir).joinpath(*asset_key.path)
    return folder / f"{partition_key}.parquet" if partition_key is not None else folder.with_suffix(".parquet")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet at ``path``, atomically: readers never see half a file, and temporary
    files that killed writers left in the folder are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


class _RunScopedIOManager(dg.ConfigurableIOManager):
    """Values at ``<base_dir>/<asset key>/<run id><suffix>``; subclasses write and read the files."""

    base_dir: str

    @property
    def suffix(self) -> str:
        raise NotImplementedError

    def _folder(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path)

    def _write(self, obj, path: Path) -> None:
        raise NotImplementedError

    def _read(self, path: Path, asset: str):
        raise NotImplementedError

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        folder = self._folder(context.asset_key)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        path = write_atomic(folder / f"{context.run_id}{self.suffix}", lambda tmp: self._write(obj, tmp))
        stored = sorted(folder.glob(f"*{self.suffix}"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in stored[KEEP_PER_ASSET:]:
            if old != path:
                old.unlink(missing_ok=True)
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(str(path))})

    def stored_path(self, context: dg.InputContext) -> Path:
        """This run's value of the input asset, else that of its latest materialisation."""
        key = context.asset_key
        asset = key.to_user_string()
        own = self._folder(key) / f"{context.step_context.run_id}{self.suffix}"
        if own.exists():
            return own
        event = context.instance.get_latest_materialization_event(key)
        if event is None:  # an instance without history (a temporary one): the newest value on disk
            stored = sorted(self._folder(key).glob(f"*{self.suffix}"), key=lambda p: p.stat().st_mtime)
            if not stored:
                raise dg.Failure(f"{asset} has never been materialised: materialise it first")
            context.log.info(f"{asset}: no materialisation in this Dagster instance; using {stored[-1]}")
            return stored[-1]
        path = self._folder(key) / f"{event.run_id}{self.suffix}"
        if not path.exists():
            raise dg.Failure(f"{path}: the value of {asset} from run {event.run_id[:8]} is missing; "
                             f"materialise {asset} again")
        return path

    def load_input(self, context: dg.InputContext):
        return self._read(self.stored_path(context), context.asset_key.to_user_string())


class RunScopedPickleIOManager(_RunScopedIOManager):
    """Pickles asset values, one file per asset and run."""

    @property
    def suffix(self) -> str:
        return ".pickle"

    def _write(self, obj, path: Path) -> None:
        with open(path, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)

    def _read(self, path: Path, asset: str):
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as exc:
            raise _corrupt(path, asset, exc) from exc


class ParquetFrameIOManager(_RunScopedIOManager):
    """Stores pandas frames as Parquet, one file per asset and run; loads frames, or :class:`EventTable`
    handles when ``lazy``."""

    lazy: bool = False

    @property
    def suffix(self) -> str:
        return ".parquet"

    def _write(self, obj: pd.DataFrame, path: Path) -> None:
        obj.to_parquet(path, index=False)

    def _read(self, path: Path, asset: str) -> pd.DataFrame | EventTable:
        table = EventTable(path, asset)
        return table if self.lazy else table.read()


def storage_resources(data_dir: str | Path, tables_dir: str | Path) -> dict[str, dg.ConfigurableIOManager]:
    """The IO managers: asset values pickled under ``<data_dir>/storage``, event tables as Parquet under
    ``tables_dir``, which ``event_table_loader`` hands to the feature engines as :class:`EventTable` paths."""
    return {
        "io_manager": RunScopedPickleIOManager(base_dir=str(Path(data_dir) / "storage")),
        "events_io_manager": ParquetFrameIOManager(base_dir=str(tables_dir)),
        "event_table_loader": ParquetFrameIOManager(base_dir=str(tables_dir), lazy=True),
    }
