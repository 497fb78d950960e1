"""Ingestion: every row accounted for, each fault with its reason, whole-file errors named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.ingest import EventFileError, read_events

HEADER = ",".join(c.TRAIN_COLUMNS)
GOOD = [
    "u1,s1,-2416201411472988629,1655993031186,2,10.0,20.0",
    "u2,s1,-2416201411472988629,1655993031100,2,11.5,21.0",
    "u3,s2,-2416201411472988630,1655993031300,5,12.0,22.0",
]


def write(tmp_path, lines, name="events.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_clean_file_is_typed_sorted_and_keeps_big_user_ids(tmp_path):
    result = read_events(write(tmp_path, GOOD), labelled=True)
    events = result.events
    assert result.counts() == {"rows_read": 3, "rows_accepted": 3, "rows_rejected": 0, "exact_duplicates": 0}
    assert list(events[c.UID]) == ["u2", "u1", "u3"]  # sorted by (session_id, timestamp)
    assert list(events[c.SOURCE_LINE]) == [3, 2, 4]
    # The two users differ only in the last digit: a float parse would merge them.
    assert events[c.USER_ID].nunique() == 2
    assert events[c.TIMESTAMP].dtype == np.int64
    assert events[c.EVENT_TYPE].dtype == np.int8
    assert events[c.SCREEN_X].dtype == np.float64


def test_equal_timestamps_keep_file_order(tmp_path):
    lines = ["a,s,u,1655993031100,2,1,1", "b,s,u,1655993031100,5,2,2", "c,s,u,1655993031000,2,3,3"]
    assert list(read_events(write(tmp_path, lines), labelled=True).events[c.UID]) == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("u9,s1,7,1655993031186,2,abc,20", "screen_x 'abc' is not a finite number"),
        ("u9,s1,7,1655993031186,2,10,", "screen_y '' is not a finite number"),
        ("u9,s1,7,1655993031186,9,10,20", "event_type '9' is not one of [1, 2, 3, 4, 5]"),
        ("u9,s1,7,1655993031186,move,10,20", "event_type 'move' is not one of"),
        ("u9,,7,1655993031186,2,10,20", "session_id is empty"),
        ("u9,s1,,1655993031186,2,10,20", "user_id is empty"),
        ("u9,s1,7,1655993031,2,10,20", "impossible timestamp '1655993031'"),
        ("u9,s1,7,-5,2,10,20", "impossible timestamp '-5'"),
        ("u9,s1,7,12.5,2,10,20", "timestamp '12.5' is not an integer"),
        ("u9,s1,7,yesterday,2,10,20", "timestamp 'yesterday' is not an integer"),
        ("u1,s1,7,1655993031999,2,10,20", "duplicate uid 'u1' with different content (first on line 2)"),
        ("u9,s1,7,1655993031186,2", "malformed line: expected 7 fields, found 5"),
        ("", "blank line"),
        (",,,,,,", "blank line"),
    ],
)
def test_each_row_fault_is_rejected_with_its_reason(tmp_path, line, reason):
    path = write(tmp_path, [*GOOD, line])
    result = read_events(path, labelled=True)
    assert result.rows_accepted == 3
    assert result.rows_rejected == 1
    row = result.rejected.iloc[0]
    assert reason in row["reason"]
    assert row["line_number"] == 5
    assert row["source_file"] == str(path)
    assert result.rows_read == result.rows_accepted + result.rows_rejected + result.exact_duplicates


def test_several_faults_of_one_row_are_all_named(tmp_path):
    result = read_events(write(tmp_path, [*GOOD, "u9,,7,x,0,10,20"]), labelled=True)
    reason = result.rejected.iloc[0]["reason"]
    assert "session_id is empty" in reason and "timestamp 'x'" in reason and "event_type '0'" in reason


def test_rejected_rows_keep_original_values(tmp_path):
    result = read_events(write(tmp_path, [*GOOD, "u9,s1,7,1655993031186,2,abc,20"]), labelled=True)
    row = result.rejected.iloc[0]
    assert (row[c.UID], row[c.SCREEN_X], row[c.USER_ID]) == ("u9", "abc", "7")


def test_exact_duplicates_are_counted_not_rejected(tmp_path):
    result = read_events(write(tmp_path, [*GOOD, GOOD[0], GOOD[0]]), labelled=True)
    assert result.counts() == {"rows_read": 5, "rows_accepted": 3, "rows_rejected": 0, "exact_duplicates": 2}


def test_test_files_need_no_user_id(tmp_path):
    header = ",".join(c.TEST_COLUMNS)
    lines = ["u1,s1,1655993031186,2,10.0,20.0", "u2,s1,1655993031100,3,11.0,21.0"]
    result = read_events(write(tmp_path, lines, header=header), labelled=False)
    assert result.rows_accepted == 2 and c.USER_ID not in result.events


def test_line_numbers_stay_right_after_a_malformed_line(tmp_path):
    lines = [GOOD[0], "broken,line", GOOD[1], "u9,s1,7,1655993031186,2,abc,20", GOOD[2]]
    result = read_events(write(tmp_path, lines), labelled=True)
    assert list(result.rejected["line_number"]) == [3, 5]
    assert sorted(result.events[c.SOURCE_LINE]) == [2, 4, 6]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("", "file is empty"),
        (HEADER + "\n", "has a header but no data rows"),
        ("uid,session_id,user_id,timestamp,event_typ,screen_x,screen_y\nu,s,1,1655993031186,2,1,1\n",
         "missing column(s) 'event_type' (found 'event_typ': misspelt?)"),
        ("uid,session_id,timestamp,event_type,screen_x,screen_y\nu,s,1655993031186,2,1,1\n",
         "missing column(s) 'user_id'"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file"),
        ("just some words\nand more\n", "missing column(s)"),
    ],
)
def test_whole_file_faults_name_the_file_and_the_fault(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(EventFileError) as error:
        read_events(path, labelled=True)
    assert str(path) in str(error.value)
    assert message in str(error.value)


@pytest.mark.kaggle
def test_real_files_are_accepted_whole(kaggle_train, kaggle_test):
    train = read_events(kaggle_train, labelled=True)
    assert train.counts() == {"rows_read": 11633, "rows_accepted": 11633, "rows_rejected": 0, "exact_duplicates": 0}
    assert train.events[c.SESSION_ID].nunique() == 120
    assert train.events[c.USER_ID].nunique() == 20
    assert train.events["user_id"].str.startswith("-2416201").all()
    test = read_events(kaggle_test, labelled=False)
    assert (test.rows_accepted, test.rows_rejected) == (4102, 0)
    assert test.events[c.SESSION_ID].nunique() == 40
    ordered = train.events.groupby(c.SESSION_ID)[c.TIMESTAMP].apply(lambda s: s.is_monotonic_increasing)
    assert ordered.all()


@pytest.mark.kaggle
def test_five_broken_rows_in_the_real_file(tmp_path, kaggle_train):
    lines = kaggle_train.read_text().splitlines()
    broken = {
        2000: lambda f: f[:4] + ["9"] + f[5:],  # event_type out of range
        4000: lambda f: f[:5] + ["n/a"] + f[6:],  # unparseable screen_x
        6000: lambda f: f[:1] + [""] + f[2:],  # empty session_id
        8000: lambda f: f[:3] + ["42"] + f[4:],  # impossible timestamp
        10000: lambda f: f[:3],  # truncated line
    }
    for index, mutate in broken.items():
        lines[index] = ",".join(mutate(lines[index].split(",")))
    path = tmp_path / "Train_broken.csv"
    path.write_text("\n".join(lines) + "\n")
    result = read_events(path, labelled=True)
    assert (result.rows_accepted, result.rows_rejected) == (11628, 5)
    assert list(result.rejected["line_number"]) == [i + 1 for i in sorted(broken)]
    assert result.rejected["reason"].str.len().gt(0).all()
    expected = pd.Series(["event_type", "screen_x", "session_id", "impossible timestamp", "malformed line"])
    assert all(e in r for e, r in zip(expected, result.rejected["reason"]))
