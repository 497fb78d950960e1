"""Where tables live: Parquet files that both engines (pandas and Spark) can read.

Event and feature tables are stored as Parquet, one file per asset (or per
partition of a partitioned asset), at ``<base_dir>/<asset key>[/<partition>].parquet``.
:class:`ParquetFrameIOManager` writes them and loads them back as pandas
frames; with ``lazy=True`` it loads an :class:`EventTable` instead, a handle
with the path, so that a Spark step reads the file itself and the events
never pass through the driver's memory.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from mouse_pipeline.outputs import remove_stale_temporaries, write_atomic


@dataclass(frozen=True)
class EventTable:
    """A stored table: its Parquet path, read on demand."""

    path: Path

    @property
    def rows(self) -> int:
        """Row count from the Parquet footer (reads no data)."""
        return pq.ParquetFile(self.path).metadata.num_rows

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path, columns=columns)


def table_path(base_dir: str | Path, asset_key: dg.AssetKey, partition_key: str | None = None) -> Path:
    """``<base_dir>/<asset key path>[/<partition_key>].parquet``."""
    folder = Path(base_dir).joinpath(*asset_key.path)
    return folder / f"{partition_key}.parquet" if partition_key is not None else folder.with_suffix(".parquet")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet at ``path``, atomically: readers never see half a file, and temporary
    files that killed writers left in the folder are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


class ParquetFrameIOManager(dg.ConfigurableIOManager):
    """Stores pandas frames as Parquet under ``base_dir``; loads frames, or :class:`EventTable` handles
    when ``lazy``."""

    base_dir: str
    lazy: bool = False

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return table_path(self.base_dir, context.asset_key, partition)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        path = write_table(obj, self._path(context))
        context.add_output_metadata({"parquet_path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | EventTable:
        path = self._path(context)
        if not path.exists():
            raise dg.Failure(f"{context.asset_key.to_user_string()} has no stored table at {path}: "
                             "materialise it first")
        return EventTable(path) if self.lazy else pd.read_parquet(path)


def storage_resources(data_dir: str | Path, tables_dir: str | Path) -> dict[str, dg.ConfigurableIOManager]:
    """The IO managers: asset values pickled under ``<data_dir>/storage`` (so later runs can reuse them),
    event and batch tables as Parquet under ``tables_dir``, which ``event_table_loader`` hands to the
    feature engines as :class:`EventTable` paths."""
    return {
        "io_manager": dg.FilesystemIOManager(base_dir=str(Path(data_dir) / "storage")),
        "events_io_manager": ParquetFrameIOManager(base_dir=str(tables_dir)),
        "event_table_loader": ParquetFrameIOManager(base_dir=str(tables_dir), lazy=True),
    }
