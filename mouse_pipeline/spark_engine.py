"""Features on Apache Spark: the same :func:`extract_features`, run on executors.

One feature function, two engines. The pandas engine calls
:func:`~mouse_pipeline.features.extract_features` on a whole frame in this
process; the Spark engine groups the events so that no session is split
(``groupBy(...).applyInPandas``) and hands each group, as a pandas frame, to
that same function on an executor. Features of a session depend on that
session's events only, so both engines give the same rows (the equivalence
tests check every value).

Validation is the pandas ingestion's too: :func:`read_events` reads a CSV
with every column as text and runs
:func:`mouse_pipeline.ingest.check_fields`, the same Arrow code and reasons,
on Spark's Arrow batches (``mapInArrow``). Spark knows no line numbers, so
its rejected rows keep their raw values and reason without one (see
:func:`read_events` for the few differences that follow).

PySpark is an optional dependency (``pip install "mouse-pipeline[spark]"``):
this module imports it only inside its functions, so importing the module
never starts a JVM. Executors must be able to import ``mouse_pipeline``
(installed in their Python, or shipped with ``--py-files``).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features.extract import (
    WINDOW,
    FeatureConfig,
    extract_features,
    feature_columns,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

ENGINES: tuple[str, ...] = ("pandas", "spark")
#: Spark master when the caller names none.
DEFAULT_MASTER = "local[*]"
#: Column Spark fills with the raw text of a CSV line it cannot parse.
CORRUPT_RECORD = "_corrupt_record"
REASON = "reason"

#: Settings every session gets (a caller's ``conf`` overrides them).
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",  # coalesces the 200 default shuffle partitions on small data
}


def check_engine(name: str) -> str:
    """``name`` if it is a known engine, else a ValueError listing them."""
    if name not in ENGINES:
        raise ValueError(f"unknown feature engine {name!r}: choose one of {', '.join(ENGINES)} (MOUSE_ENGINE)")
    return name


def start_session(master: str | None = None, app_name: str = "mouse-pipeline",
                  conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session (or the active one) for ``master`` (default ``local[*]``; the pipeline passes
    its ``MOUSE_SPARK_MASTER`` setting).

    With a local master and no ``PYSPARK_PYTHON`` set, the Python workers run
    this interpreter, the one where ``mouse_pipeline`` is installed. On a
    cluster the workers' Python is the cluster's to configure.
    """
    from pyspark.sql import SparkSession

    # PySpark 4 warns on every pandas conversion that pandas 3 is not yet fully supported;
    # the equivalence tests check the conversions this module uses, value by value.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    master = master or DEFAULT_MASTER
    settings = {**DEFAULT_CONF, **(conf or {})}
    if master.startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
        os.environ["PYSPARK_PYTHON"] = sys.executable  # PySpark reads the variable, not a conf key
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@lru_cache(maxsize=1)
def feature_names() -> tuple[str, ...]:
    """The feature columns :func:`extract_features` returns, in order (the same for every config)."""
    probe = pd.DataFrame({
        c.SESSION_ID: ["probe"] * 3, c.TIMESTAMP: [0, 10, 20], c.EVENT_TYPE: [2, 2, 2],
        c.SCREEN_X: [0.0, 1.0, 2.0], c.SCREEN_Y: [0.0, 1.0, 1.0],
    })
    return tuple(feature_columns(extract_features(probe)))


def feature_schema(labelled: bool) -> StructType:
    """Spark schema of a feature table: identity columns, then every feature as double."""
    from pyspark.sql import types as T

    fields = [T.StructField(c.SESSION_ID, T.StringType(), False), T.StructField(WINDOW, T.LongType(), False)]
    if labelled:
        fields.append(T.StructField(c.USER_ID, T.StringType(), False))
    fields += [T.StructField(name, T.DoubleType(), False) for name in feature_names()]
    return T.StructType(fields)


def file_format(path: str) -> str:
    """``"csv"`` or ``"parquet"`` from a path's suffix (a Parquet folder ends in ``.parquet`` too)."""
    name = str(path).rstrip("/").lower()
    for fmt in ("csv", "parquet"):
        if name.endswith(f".{fmt}"):
            return fmt
    raise ValueError(f"{path}: cannot tell the format; name CSV files *.csv and Parquet files or folders *.parquet")


@dataclass(frozen=True)
class SparkEvents:
    """Events read by Spark: every row read, the rows checked, the clean events and the rejected rows.

    ``rows`` (after exact duplicates are dropped, when they are) and
    ``rejected`` carry a ``reason`` column (empty for a good row);
    ``rejected`` has the raw text of each column, the raw line of a
    malformed one (``_corrupt_record``) and the reason.
    """

    read: DataFrame
    rows: DataFrame
    events: DataFrame
    rejected: DataFrame
    deduplicated: bool

    def counts(self) -> tuple[int, int, int]:
        """``(rows_read, rows_accepted, rows_rejected)``: one pass over the input, plus one over the
        checked rows when exact duplicates were dropped."""
        from pyspark.sql import functions as F

        stats = self.rows.agg(F.count(F.lit(1)).alias("rows"),
                              F.sum((F.col(REASON) != "").cast("long")).alias("rejected")).first()
        rows, rejected = int(stats["rows"]), int(stats["rejected"] or 0)
        read = self.read.count() if self.deduplicated else rows
        return read, rows - rejected, rejected


#: Prefix of the raw-text columns that the checked rows carry for rejected rows.
RAW = "raw_"
_ROW = "_row"


def _checked_schema(columns: tuple[str, ...]) -> StructType:
    """Schema of the batches :func:`_field_checker` returns."""
    from pyspark.sql import types as T

    typed = {c.UID: T.StringType(), c.SESSION_ID: T.StringType(), c.USER_ID: T.StringType(),
             c.TIMESTAMP: T.LongType(), c.EVENT_TYPE: T.IntegerType(), c.SCREEN_X: T.DoubleType(),
             c.SCREEN_Y: T.DoubleType()}
    return T.StructType([
        *[T.StructField(name, typed[name], True) for name in columns],
        *[T.StructField(RAW + name, T.StringType(), True) for name in columns],
        T.StructField(CORRUPT_RECORD, T.StringType(), True),
        T.StructField(REASON, T.StringType(), False),
    ])


_REUSED = "_reused"


def _field_checker(columns: tuple[str, ...], labelled: bool):
    """The function ``mapInArrow`` runs on each batch: :func:`mouse_pipeline.ingest.check_fields`.

    In: the raw columns (text from a CSV, typed from Parquet), the corrupt
    record and ``_reused`` (does the row reuse an earlier row's uid?). Out
    (:func:`_checked_schema`): the typed, space-trimmed values; the raw text
    of rejected rows (null for clean ones, which need none); the corrupt
    record; the reason (``""`` for a clean row).
    """
    schema = _checked_schema(columns)

    def check(batches):
        import csv

        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyspark.sql.pandas.types import to_arrow_schema

        from mouse_pipeline.ingest import check_fields, malformed_reason, reused_uid_reason

        arrow_schema = to_arrow_schema(schema)
        for batch in batches:
            table = pa.Table.from_batches([batch])
            fields = check_fields(table.select(list(columns)), labelled)
            corrupt = table.column(CORRUPT_RECORD)
            malformed = ~pc.is_null(corrupt).to_numpy(zero_copy_only=False)
            reused = pc.fill_null(table.column(_REUSED), False).to_numpy(zero_copy_only=False)
            faulty = fields.faulty() | malformed | reused
            reasons = np.full(table.num_rows, "", dtype=object)
            rows = np.flatnonzero(faulty)
            if len(rows):
                raw = table.take(pa.array(rows))
                reasons[rows] = fields.reasons(rows, raw)
                for i, row in enumerate(rows):  # rejected rows only
                    if malformed[row]:  # Spark gives the line; its fields are counted here
                        found = len(next(csv.reader([corrupt[int(row)].as_py()]), []))
                        reasons[row] = malformed_reason(len(columns), found)
                    elif reused[row]:
                        extra = reused_uid_reason(raw.column(c.UID)[i].as_py() or "")
                        reasons[row] = f"{reasons[row]}; {extra}" if reasons[row] else extra
            typed = {name: fields.ids[name].per_row() for name in fields.ids}
            typed.update({c.TIMESTAMP: pa.array(fields.timestamp), c.EVENT_TYPE: pa.array(fields.event_type),
                          c.SCREEN_X: pa.array(fields.screen_x), c.SCREEN_Y: pa.array(fields.screen_y)})
            keep = pa.array(faulty)
            raw_text = {RAW + name: pc.if_else(keep, pc.cast(table.column(name), pa.string()),
                                               pa.scalar(None, pa.string())) for name in columns}
            out = pa.table({**{name: typed[name] for name in columns}, **raw_text, CORRUPT_RECORD: corrupt,
                            REASON: pa.array(reasons, pa.string())})
            yield from out.cast(arrow_schema).to_batches()

    return check


def read_events(spark: SparkSession, paths: str | Iterable[str], labelled: bool | None = None,
                deduplicate: bool | None = None) -> SparkEvents:
    """Events from CSV or Parquet paths Spark can read (local, ``hdfs://``, ``s3a://``...).

    All paths must share one format (see :func:`file_format`). ``labelled``
    (whether there is a ``user_id`` column) defaults to what the first file's
    header says; Parquet tables may leave out ``uid``.

    Every row goes through :func:`mouse_pipeline.ingest.check_fields` on
    Spark's Arrow batches (``mapInArrow``): the pandas ingestion's rules and
    reasons, word for word. A CSV is read with every column as text; a line
    with the wrong number of fields is ``malformed line: expected 7 fields,
    found N``. Parquet columns are checked as typed (missing values, ranges).
    A rejected row is kept in ``rejected`` with its raw values and reason,
    never dropped. What Spark cannot do as the pandas ingestion does:

    * there are no line numbers: rejected rows have none, and a uid reused
      with different content is ``duplicate uid 'X' with different content``
      without ``(first on line N)``; the first row is the first in Spark's
      read order (file order within one file);
    * Spark's CSV reader skips empty lines: they are not counted (a line of
      empty fields, ``,,,,,,``, is a ``blank line`` as in pandas).

    ``deduplicate`` counts exact duplicates (every raw column equal, ``uid``
    included) and keeps one row of each, then flags reused uids, as the
    pandas ingestion does. It costs two shuffles of all rows, so by default
    it is done for CSV (raw logs) and not for Parquet (tables the pipeline's
    ingestion wrote, already unique).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    formats = {file_format(p) for p in paths}
    if len(formats) != 1:
        raise ValueError(f"mixed formats {sorted(formats)} in {paths}: read CSV and Parquet separately")
    fmt = formats.pop()
    if labelled is None:
        header = spark.read.csv(paths[0], header=True).columns if fmt == "csv" else spark.read.parquet(paths[0]).columns
        labelled = c.USER_ID in header
    columns = c.expected_columns(labelled)
    if fmt == "csv":
        text = StructType([*[StructField(name, StringType(), True) for name in columns],
                           StructField(CORRUPT_RECORD, StringType(), True)])
        raw = spark.read.csv(paths, header=True, schema=text, mode="PERMISSIVE",
                             columnNameOfCorruptRecord=CORRUPT_RECORD, enforceSchema=False)
    else:
        raw = spark.read.parquet(*paths)
        # uid identifies a row but no feature reads it: a Parquet table may leave it out.
        missing = [name for name in columns if name not in raw.columns and name != c.UID]
        if missing:
            raise ValueError(f"{', '.join(paths)}: Parquet events lack column(s) {missing}")
        columns = tuple(name for name in columns if name in raw.columns)
        raw = raw.select(*columns, F.lit(None).cast("string").alias(CORRUPT_RECORD))
    raw = raw.withColumn(_ROW, F.monotonically_increasing_id())  # read order, for "first"
    deduplicate = fmt == "csv" if deduplicate is None else deduplicate
    rows = raw
    if deduplicate:  # malformed lines are never duplicates of each other, as in pandas
        distinct = F.when(F.col(CORRUPT_RECORD).isNull(), F.lit(-1)).otherwise(F.col(_ROW))
        rows = raw.withColumn("_distinct", distinct).dropDuplicates([*columns, CORRUPT_RECORD, "_distinct"])
        rows = rows.drop("_distinct")
    reused = F.lit(False)
    if deduplicate and c.UID in columns:  # later rows of a uid, in read order (malformed lines aside)
        key = F.when(F.col(CORRUPT_RECORD).isNull(), F.coalesce(F.col(c.UID), F.lit("")))
        reused = key.isNotNull() & (F.row_number().over(Window.partitionBy(key).orderBy(_ROW)) > 1)
    rows = rows.withColumn(_REUSED, reused).drop(_ROW)
    checked = rows.mapInArrow(_field_checker(columns, labelled), _checked_schema(columns))
    events = checked.where(F.col(REASON) == "").select(*columns)
    rejected = checked.where(F.col(REASON) != "").select(
        *[F.col(RAW + name).alias(name) for name in columns], CORRUPT_RECORD, REASON)
    return SparkEvents(read=raw, rows=checked, events=events, rejected=rejected, deduplicated=deduplicate)


#: Events per ``applyInPandas`` call by default (see :func:`session_features`).
EVENTS_PER_GROUP = 200_000
_GROUP = "_session_group"


def session_features(events: DataFrame, config: FeatureConfig = FeatureConfig(),
                     events_per_group: int = EVENTS_PER_GROUP, n_events: int | None = None) -> DataFrame:
    """Feature rows of every session (or window) of ``events``, computed on executors.

    The events are grouped so that a session is never split, and each group
    arrives on an executor as a pandas frame that goes through
    :func:`extract_features` with ``config``, the very function of the pandas
    engine (``groupBy(...).applyInPandas(...)``). Features of a session
    depend on its own events only, so the grouping does not change them.

    ``events_per_group`` sets the grouping:

    * ``0``: one group per session, ``groupBy(session_id)``. Simple, but each
      call costs a few milliseconds whatever its size, which dominates for
      sessions of a few hundred events.
    * ``N`` (default 200,000): sessions are hashed into
      ``ceil(n_events / N)`` groups of whole sessions, about ``N`` events each
      (``n_events`` is counted when not given), so each call featurises
      thousands of sessions at the pandas engine's speed while its frame
      stays small enough for one Python worker.

    The result has :func:`feature_schema` (unordered, as Spark results are;
    sort by ``session_id, window`` for the pandas engine's order).
    """
    labelled = c.USER_ID in events.columns
    schema = feature_schema(labelled)
    names = schema.fieldNames()

    text = {name: object for name in (c.SESSION_ID, c.USER_ID) if name in names}

    def featurise(group: pd.DataFrame) -> pd.DataFrame:
        # Text columns go back as Python objects: PySpark cannot convert pandas 3's Arrow-backed
        # strings when they come in several chunks (a frame of many sessions).
        return extract_features(group, config, threads=1)[names].astype(text)

    needed = [name for name in c.TRAIN_COLUMNS if name != c.UID and (labelled or name != c.USER_ID)]
    events = events.select(*needed)
    if events_per_group <= 0:
        return events.groupBy(c.SESSION_ID).applyInPandas(featurise, schema)
    from pyspark.sql import functions as F

    n_events = events.count() if n_events is None else n_events
    groups = max(1, -(-n_events // events_per_group))
    bucket = F.pmod(F.xxhash64(c.SESSION_ID), F.lit(groups))
    return events.withColumn(_GROUP, bucket).groupBy(_GROUP).applyInPandas(
        lambda group: featurise(group.drop(columns=_GROUP)), schema)


@dataclass(frozen=True)
class FeatureFiles:
    """What :func:`features_to_parquet` read and wrote.

    Row accounting as in the pandas ingestion:
    ``rows_read == rows_accepted + rows_rejected + exact_duplicates``.
    """

    features: str
    rejected: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int

    @property
    def exact_duplicates(self) -> int:
        return self.rows_read - self.rows_accepted - self.rows_rejected


def features_to_parquet(
    spark: SparkSession, inputs: str | Iterable[str], output: str, config: FeatureConfig = FeatureConfig(),
    rejected_output: str | None = None, labelled: bool | None = None, events_per_group: int = EVENTS_PER_GROUP,
) -> FeatureFiles:
    """Read events (CSV or Parquet), write their features to the Parquet folder ``output``.

    Rejected input rows are written, with their reason, to ``rejected_output``
    (default: ``output`` with ``.rejected`` before its suffix) when there are
    any. Both folders are overwritten; :func:`read_feature_table` reads the
    features back in the pandas engine's order. Counting the rows costs a
    quick pass over the input (see :meth:`SparkEvents.counts`).
    ``events_per_group``: see :func:`session_features`.
    """
    read = read_events(spark, inputs, labelled)
    rows_read, rows_accepted, rows_rejected = read.counts()
    features = session_features(read.events, config, events_per_group, rows_accepted)
    # Sorted within each output file, not across files: a global orderBy would sample the
    # features (running every session through Python twice) to choose its ranges.
    features.sortWithinPartitions(c.SESSION_ID, WINDOW).write.mode("overwrite").parquet(output)
    rejected_path = None
    if rows_rejected:
        rejected_path = rejected_output or _sibling(output, ".rejected")
        read.rejected.write.mode("overwrite").parquet(rejected_path)
    return FeatureFiles(features=output, rejected=rejected_path, rows_read=rows_read,
                        rows_accepted=rows_accepted, rows_rejected=rows_rejected)


def _sibling(path: str, tag: str) -> str:
    stem = str(path).rstrip("/")
    return f"{stem[:-len('.parquet')]}{tag}.parquet" if stem.endswith(".parquet") else f"{stem}{tag}"


def read_feature_table(path: str) -> pd.DataFrame:
    """A feature Parquet folder as the pandas engine returns it: sorted by ``session_id, window``."""
    table = pd.read_parquet(path)
    return table.sort_values([c.SESSION_ID, WINDOW], kind="stable", ignore_index=True)
