"""Helpers that turn core results into Dagster metadata a person wants to read."""

import base64

import dagster as dg
import pandas as pd


def table_preview(frame: pd.DataFrame, rows: int = 10, columns: int | None = 12) -> dg.MetadataValue:
    """The first rows (and columns) of a frame as Markdown."""
    shown = frame.head(rows)
    if columns is not None and shown.shape[1] > columns:
        shown = shown.iloc[:, :columns]
    return dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4g"))


def png_markdown(png: bytes, caption: str) -> dg.MetadataValue:
    """A PNG image embedded in Markdown metadata."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{encoded})")
