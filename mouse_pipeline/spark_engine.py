"""Features on Apache Spark: the same :func:`extract_features`, run per session on executors.

One feature function, two engines. The pandas engine calls
:func:`~mouse_pipeline.features.extract_features` on a whole frame in this
process; the Spark engine groups the events by ``session_id`` and hands each
session, as a pandas frame, to that same function on an executor
(``groupBy(session_id).applyInPandas``). Features of a session depend on that
session's events only, so both engines give the same rows (the equivalence
tests check every value).

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
from typing import TYPE_CHECKING, Literal

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

Engine = Literal["pandas", "spark"]
ENGINES: tuple[str, ...] = ("pandas", "spark")
#: Spark master when neither the caller nor ``MOUSE_SPARK_MASTER`` names one.
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


def spark_master(master: str | None = None) -> str:
    """The Spark master to use: ``master``, else ``MOUSE_SPARK_MASTER``, else ``local[*]``."""
    return master or os.environ.get("MOUSE_SPARK_MASTER", "") or DEFAULT_MASTER


def start_session(master: str | None = None, app_name: str = "mouse-pipeline",
                  conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session (or the active one) for ``master`` (see :func:`spark_master`).

    With a local master and no ``PYSPARK_PYTHON`` set, the Python workers run
    this interpreter, the one where ``mouse_pipeline`` is installed. On a
    cluster the workers' Python is the cluster's to configure.
    """
    from pyspark.sql import SparkSession

    # PySpark 4 warns on every pandas conversion that pandas 3 is not yet fully supported;
    # the equivalence tests check the conversions this module uses, value by value.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    master = spark_master(master)
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


def event_schema(labelled: bool) -> StructType:
    """Spark schema of an event file with the contract's columns and types."""
    from pyspark.sql import types as T

    types = {c.UID: T.StringType(), c.SESSION_ID: T.StringType(), c.USER_ID: T.StringType(),
             c.TIMESTAMP: T.LongType(), c.EVENT_TYPE: T.IntegerType(), c.SCREEN_X: T.DoubleType(),
             c.SCREEN_Y: T.DoubleType()}
    return T.StructType([T.StructField(name, types[name], True) for name in c.expected_columns(labelled)])


def file_format(path: str) -> str:
    """``"csv"`` or ``"parquet"`` from a path's suffix (a Parquet folder ends in ``.parquet`` too)."""
    name = str(path).rstrip("/").lower()
    for fmt in ("csv", "parquet"):
        if name.endswith(f".{fmt}"):
            return fmt
    raise ValueError(f"{path}: cannot tell the format; name CSV files *.csv and Parquet files or folders *.parquet")


@dataclass(frozen=True)
class SparkEvents:
    """Events read by Spark: every row read, the clean events and the rejected rows.

    ``rows`` and ``rejected`` carry a ``reason`` column (empty for a good row).
    """

    rows: DataFrame
    events: DataFrame
    rejected: DataFrame
    labelled: bool


def read_events(spark: SparkSession, paths: str | Iterable[str], labelled: bool | None = None) -> SparkEvents:
    """Events from CSV or Parquet paths Spark can read (local, ``hdfs://``, ``s3a://``...).

    All paths must share one format (see :func:`file_format`). ``labelled``
    (whether there is a ``user_id`` column) defaults to what the first file's
    header says. CSV rows are parsed with the contract's schema; a row that
    does not parse, lacks a value, has an unknown event code or an impossible
    timestamp goes to ``rejected`` with its reason, never dropped.
    """
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
    schema = event_schema(labelled)
    if fmt == "csv":
        with_corrupt = StructType([*schema.fields, StructField(CORRUPT_RECORD, StringType(), True)])
        raw = spark.read.csv(paths, header=True, schema=with_corrupt, mode="PERMISSIVE",
                             columnNameOfCorruptRecord=CORRUPT_RECORD, enforceSchema=False)
    else:
        raw = spark.read.parquet(*paths)
        missing = [name for name in schema.fieldNames() if name not in raw.columns]
        if missing:
            raise ValueError(f"{', '.join(paths)}: Parquet events lack column(s) {missing}")
        raw = raw.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields], F.lit(None).cast("string").alias(CORRUPT_RECORD))

    faults = [F.when(F.col(CORRUPT_RECORD).isNotNull(), F.lit("unparseable row"))]
    faults += [F.when(F.col(name).isNull(), F.lit(f"missing {name}")) for name in schema.fieldNames()]
    faults.append(F.when(~F.col(c.EVENT_TYPE).isin(*c.EVENT_CODES), F.lit("unknown event_type")))
    faults.append(F.when(~F.col(c.TIMESTAMP).between(c.MIN_TIMESTAMP_MS, c.MAX_TIMESTAMP_MS),
                         F.lit("impossible timestamp")))
    checked = raw.withColumn(REASON, F.concat_ws("; ", *faults))
    # As in the pandas ingestion, a row identical to another in every column (uid included)
    # is an exact duplicate: kept once.
    clean = checked.where(F.col(REASON) == "").select(*schema.fieldNames()).dropDuplicates()
    rejected = checked.where(F.col(REASON) != "")
    return SparkEvents(rows=checked, events=clean, rejected=rejected, labelled=labelled)


def session_features(events: DataFrame, config: FeatureConfig = FeatureConfig()) -> DataFrame:
    """Feature rows of every session (or window) of ``events``, computed on executors.

    Each session is one group of ``groupBy(session_id).applyInPandas``: its
    events arrive on an executor as a pandas frame and go through
    :func:`extract_features` with ``config``, the very function of the pandas
    engine. The result has :func:`feature_schema` (unordered, as Spark
    results are; sort by ``session_id, window`` for the pandas engine's order).
    """
    labelled = c.USER_ID in events.columns
    schema = feature_schema(labelled)
    names = schema.fieldNames()

    def featurise(session: pd.DataFrame) -> pd.DataFrame:
        return extract_features(session, config, threads=1)[names]

    needed = [name for name in c.TRAIN_COLUMNS if name != c.UID and (labelled or name != c.USER_ID)]
    return events.select(*needed).groupBy(c.SESSION_ID).applyInPandas(featurise, schema)


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
    rejected_output: str | None = None, labelled: bool | None = None,
) -> FeatureFiles:
    """Read events (CSV or Parquet), write their features to the Parquet folder ``output``.

    Rejected input rows are written, with their reason, to ``rejected_output``
    (default: ``output`` with ``.rejected`` before its suffix) when there are
    any. Both folders are overwritten. Feature rows are written sorted by
    ``session_id, window``. Counting the rows costs three extra passes over
    the input.
    """
    read = read_events(spark, inputs, labelled)
    features = session_features(read.events, config).orderBy(c.SESSION_ID, WINDOW)
    features.write.mode("overwrite").parquet(output)
    rejected_path = None
    rows_rejected = read.rejected.count()
    if rows_rejected:
        rejected_path = rejected_output or _sibling(output, ".rejected")
        read.rejected.write.mode("overwrite").parquet(rejected_path)
    return FeatureFiles(features=output, rejected=rejected_path, rows_read=read.rows.count(),
                        rows_accepted=read.events.count(), rows_rejected=rows_rejected)


def _sibling(path: str, tag: str) -> str:
    stem = str(path).rstrip("/")
    return f"{stem[:-len('.parquet')]}{tag}.parquet" if stem.endswith(".parquet") else f"{stem}{tag}"


def read_feature_table(path: str) -> pd.DataFrame:
    """A feature Parquet folder as the pandas engine returns it: sorted by ``session_id, window``."""
    table = pd.read_parquet(path)
    return table.sort_values([c.SESSION_ID, WINDOW], kind="stable", ignore_index=True)
