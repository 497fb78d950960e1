"""Ingestion: every row accounted for, each fault with its reason, whole-file errors named."""

from __future__ import annotations

import os

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


# --- Values mangled by spreadsheets, formula neutralisation, and the fast paths -------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("u9,s1,7,1.65599E+12,2,10,20",
         "timestamp '1.65599E+12' is in scientific notation (precision lost, e.g. saved by a spreadsheet)"),
        ("u9,s1,7,1.655993031186e+12,2,10,20", "timestamp '1.655993031186e+12' is in scientific notation"),
        ("u9,s1,-2.4162E+18,1655993031186,2,10,20",
         "user_id '-2.4162E+18' is in scientific notation (precision lost, e.g. saved by a spreadsheet)"),
        ("u9,1.2345E+17,7,1655993031186,2,10,20", "session_id '1.2345E+17' is in scientific notation"),
        ("9.87E+20,s1,7,1655993031186,2,10,20", "uid '9.87E+20' is in scientific notation"),
        ("u9,s1,7,1655993031186.5,2,10,20", "timestamp '1655993031186.5' is not an integer"),
        ("u9,s1,7,0x181,2,10,20", "timestamp '0x181' is not an integer"),
        ("u9,s1,7,1655993031186,0x2,10,20", "event_type '0x2' is not one of"),
        ("u9,s1,7,1655993031186,2.5,10,20", "event_type '2.5' is not one of"),
        ("u9,s1,7,1655993031186,2,inf,20", "screen_x 'inf' is not a finite number"),
        ("u9,s1,7,1655993031186,2,10,nan", "screen_y 'nan' is not a finite number"),
        ("u9,s1,7,99999999999999999999,2,10,20", "impossible timestamp '99999999999999999999'"),
        ("u9,\t,7,1655993031186,2,10,20", "session_id is empty"),
    ],
)
def test_spreadsheet_mangled_and_odd_values_are_rejected_with_their_reason(tmp_path, line, reason):
    result = read_events(write(tmp_path, [*GOOD, line]), labelled=True)
    assert (result.rows_accepted, result.rows_rejected) == (3, 1)
    assert reason in result.rejected.iloc[0]["reason"]
    assert result.rejected.iloc[0]["line_number"] == 5


def test_scientific_notation_is_named_once_not_also_as_a_non_integer(tmp_path):
    result = read_events(write(tmp_path, [*GOOD, "u9,s1,7,1.65599E+12,2,10,20"]), labelled=True)
    assert "not an integer" not in result.rejected.iloc[0]["reason"]


@pytest.mark.parametrize(
    ("field", "value", "column", "expected"),
    [
        (3, "1655993031186.0", c.TIMESTAMP, 1655993031186),  # a zero fraction loses nothing
        (3, "1655993031186.000", c.TIMESTAMP, 1655993031186),
        (3, " 1655993031186 ", c.TIMESTAMP, 1655993031186),
        (3, "+1655993031186", c.TIMESTAMP, 1655993031186),
        (4, "2.0", c.EVENT_TYPE, 2),
        (4, " 5 ", c.EVENT_TYPE, 5),
        (5, "-3.5", c.SCREEN_X, -3.5),
        (5, " 7 ", c.SCREEN_X, 7.0),
        (5, "1e3", c.SCREEN_X, 1000.0),
        (0, "12e4", c.UID, "12e4"),  # hexadecimal-looking ids are not numbers in disguise
        (0, "1e10", c.UID, "1e10"),
        (2, "1E5", c.USER_ID, "1E5"),
    ],
)
def test_values_in_other_accepted_forms_parse_like_plain_ones(tmp_path, field, value, column, expected):
    fields = "u9,s3,7,1655993031186,2,10,20".split(",")
    fields[field] = value
    result = read_events(write(tmp_path, [*GOOD, ",".join(fields)]), labelled=True)
    assert result.rows_rejected == 0, result.rejected["reason"].tolist()
    row = result.events.set_index(c.SOURCE_LINE).loc[5]
    assert row[column] == expected


def test_ids_keep_a_leading_tab_and_lose_only_spaces(tmp_path):
    """A tab that neutralises a formula (OWASP CSV injection) must survive ingestion."""
    lines = ["\t=1+1,s1,7,1655993031186,2,10,20", "u2,  s1  ,7,1655993031187,2,10,20",
             "u3,s1\t,\t-7,1655993031188,2,10,20"]
    events = read_events(write(tmp_path, lines), labelled=True).events
    assert list(events[c.UID]) == ["\t=1+1", "u2", "u3"]
    assert list(events[c.SESSION_ID]) == ["s1", "s1", "s1\t"]  # spaces trimmed, the tab kept
    assert list(events[c.USER_ID]) == ["7", "7", "\t-7"]


def test_ids_are_trimmed_before_sorting(tmp_path):
    lines = ["a,s2,u,1655993031100,2,1,1", "b, s1,u,1655993031300,2,1,1", "c,s1 ,u,1655993031200,2,1,1"]
    events = read_events(write(tmp_path, lines), labelled=True).events
    assert list(events[c.UID]) == ["c", "b", "a"]
    assert events[c.SESSION_ID].nunique() == 2


def test_an_exact_duplicate_of_a_faulty_row_is_counted_once_as_rejected(tmp_path):
    bad = "u9,s1,7,1655993031186,2,abc,20"
    result = read_events(write(tmp_path, [*GOOD, bad, bad]), labelled=True)
    assert result.counts() == {"rows_read": 5, "rows_accepted": 3, "rows_rejected": 1, "exact_duplicates": 1}


def test_reused_uid_and_a_field_fault_are_both_named(tmp_path):
    result = read_events(write(tmp_path, [*GOOD, "u1,s1,7,1655993031186,2,abc,20"]), labelled=True)
    assert result.rejected.iloc[0]["reason"] == (
        "screen_x 'abc' is not a finite number; duplicate uid 'u1' with different content (first on line 2)")


@pytest.mark.parametrize("uid_length", [3, 36, 70], ids=["short", "uuid", "longer-than-hashed"])
def test_repeated_uids_are_found_whatever_their_length(tmp_path, uid_length):
    rng = np.random.default_rng(0)
    uids = ["".join(rng.choice(list("abcdef0123456789"), uid_length)) for _ in range(300)]
    uids = list(dict.fromkeys(uids))
    lines = [f"{u},s{i % 7},7,{1655993031186 + i},2,{i},1" for i, u in enumerate(uids)]
    lines += [lines[10], lines[20].replace(",1\n", ",2\n").rsplit(",", 1)[0] + ",99", f"{uids[5]}x,s1,7,1655993031186,2,1,1"]
    result = read_events(write(tmp_path, lines), labelled=True)
    assert result.exact_duplicates == 1
    assert result.rows_rejected == 1
    assert result.rejected.iloc[0]["reason"].startswith(f"duplicate uid '{uids[20]}'")
    assert result.rows_accepted == len(uids) + 1


def test_faulty_rows_do_not_change_the_values_of_the_clean_ones(tmp_path, small_files):
    """The cast of a clean column and the fallback of a column with a fault give the same values."""
    lines = small_files["train"].read_text().splitlines()
    clean = read_events(small_files["train"], labelled=True).events
    faulty = lines[:1] + [lines[1].replace(",", ",x", 3)] + lines[2:]
    faulty += ["u,s,7,1.5E+12,oops,-,."]
    path = tmp_path / "faulty.csv"
    path.write_text("\n".join(faulty) + "\n")
    result = read_events(path, labelled=True)
    assert result.rows_rejected == 2
    expected = clean[clean[c.SOURCE_LINE] != 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.events, expected)


def test_events_keep_arrow_backed_strings(tmp_path):
    events = read_events(write(tmp_path, GOOD), labelled=True).events
    for name in (c.UID, c.SESSION_ID, c.USER_ID):
        assert events[name].dtype == "str"
        assert isinstance(events[name].array, pd.arrays.ArrowStringArray)


def test_ids_stay_with_their_row_after_a_rejected_row(tmp_path):
    """Regression: ids of accepted rows were shifted (or lost) when an earlier row was rejected."""
    lines = ["u0,s1,7,1655993031186,2,abc,20", "u1,s1,7,1655993031186,2,10,20", "u2,s1,8,1655993031187,2,10,20"]
    events = read_events(write(tmp_path, lines), labelled=True).events
    assert events[[c.UID, c.USER_ID, c.SOURCE_LINE]].values.tolist() == [["u1", "7", 3], ["u2", "8", 4]]


def test_uids_repeated_across_chunks_are_found_whatever_their_lengths():
    import pyarrow as pa

    from mouse_pipeline.ingest import _shared_uid_rows

    uids = pa.chunked_array([pa.array(["abc", "x" * 36, "q"]), pa.array(["zz", "abc"]), pa.array(["y" * 10] * 3),
                             pa.array(["abc", "abcd"])])
    assert list(_shared_uid_rows(uids)) == [0, 4, 5, 6, 7, 8]


def test_the_package_asks_numpy_for_ordinary_pages_unless_the_user_chose():
    import subprocess
    import sys

    probe = ("import mouse_pipeline, numpy\n"
             "try:\n    from numpy._core.multiarray import _set_madvise_hugepage\n"
             "except ImportError:\n    from numpy.core.multiarray import _set_madvise_hugepage\n"
             "print(_set_madvise_hugepage(True))")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    default = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "False"
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "NUMPY_MADVISE_HUGEPAGE": "1"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "True"


def test_uid_hashes_are_equal_exactly_for_equal_uids_whatever_the_mix_of_lengths():
    import pyarrow as pa

    from mouse_pipeline.ingest import _string_hashes

    for values in (["u-1", "u-2", "u-1"], ["u-1", "", "u-2", "", "u-1"], ["a", "abc", "", "a", "abc"],
                   ["x" * 40, "", "x" * 40, "y" * 40], ["", ""]):
        hashes = _string_hashes(pa.array(values), max(map(len, values)))
        same_value = np.equal.outer(np.array(values, dtype=object), np.array(values, dtype=object))
        assert (np.equal.outer(hashes, hashes) == same_value).all(), values
    # A slice of a larger array (its offsets start past 0) hashes as the same values on their own.
    whole = pa.array(["zz", "u-1", "", "u-2", "u-1"])
    assert (_string_hashes(whole.slice(1), 3) == _string_hashes(pa.array(["u-1", "", "u-2", "u-1"]), 3)).all()


def test_a_file_in_order_but_for_its_bad_timestamps_is_not_sorted_again(tmp_path, monkeypatch):
    from mouse_pipeline import ingest

    orders = []

    def recording(codes, t):
        found = sort_by_code_and_time(codes, t)
        orders.append(found[0])
        return found

    sort_by_code_and_time = ingest.sort_by_code_and_time
    monkeypatch.setattr(ingest, "sort_by_code_and_time", recording)
    lines = [f"u{i},s1,-2416201411472988629,{1655993031000 + i},2,10.0,20.0" for i in range(6)]
    lines[0] = lines[0].replace("1655993031000", "12.5")  # rejected: the first row has no valid time before it
    lines[3] = lines[3].replace("1655993031003", "1.65599E+12")
    result = read_events(write(tmp_path, lines), labelled=True)
    assert orders == [None]  # the bad times took their neighbours' places: found in order
    assert result.events["source_line"].tolist() == [3, 4, 6, 7]
    assert result.rejected["line_number"].tolist() == [2, 5]


def test_runs_of_bad_timestamps_take_the_time_before_the_run(tmp_path, monkeypatch):
    from mouse_pipeline import ingest

    seen = []

    def recording(codes, t):
        seen.append(t.copy())
        return sort_by_code_and_time(codes, t)

    sort_by_code_and_time = ingest.sort_by_code_and_time
    monkeypatch.setattr(ingest, "sort_by_code_and_time", recording)
    times = [1655993031000 + i for i in range(9)]
    lines = [f"u{i},s1,-2416201411472988629,{t},2,10.0,20.0" for i, t in enumerate(times)]
    for i, bad in ((0, "x"), (1, "12.5"), (4, "1.65599E+12"), (5, "-3"), (6, "99"), (8, "")):
        lines[i] = lines[i].replace(str(times[i]), bad)
    result = read_events(write(tmp_path, lines), labelled=True)
    # Rows before the first valid one take its time; a run takes the time of the row before it.
    assert seen[0].tolist() == [times[2], times[2], times[2], times[3], times[3], times[3], times[3], times[7],
                                times[7]]
    assert result.events["source_line"].tolist() == [4, 5, 9]
    assert result.rejected["line_number"].tolist() == [2, 3, 6, 7, 8, 10]


def test_rows_sure_to_be_rejected_stand_in_within_their_own_session(tmp_path, monkeypatch):
    from mouse_pipeline import ingest

    seen = []

    def recording(codes, t):
        seen.append((codes.copy(), t.copy()))
        return sort_by_code_and_time(codes, t)

    sort_by_code_and_time = ingest.sort_by_code_and_time
    monkeypatch.setattr(ingest, "sort_by_code_and_time", recording)
    day = 86_400_000
    # Two sessions a month apart, interleaved: a bad time right after a row of its own session takes
    # that row's time (line 7); after a row of the other session, its own session's first valid time
    # (lines 5 and 8), not the other session's.
    start = 1655993031000
    rows = [("a", start), ("b", start + 30 * day), ("a", start + 5), ("b", "12.5"), ("b", start + 30 * day + 7),
            ("b", "x"), ("a", "1.65599E+12")]
    lines = [f"u{i},{s},-2416201411472988629,{t},2,10.0,20.0" for i, (s, t) in enumerate(rows)]
    result = read_events(write(tmp_path, lines), labelled=True)
    codes, t = seen[0]
    assert codes.tolist() == [0, 1, 0, 1, 1, 1, 0]
    assert t.tolist() == [start, start + 30 * day, start + 5, start + 30 * day, start + 30 * day + 7,
                          start + 30 * day + 7, start]
    assert result.events["source_line"].tolist() == [2, 4, 3, 6]
    assert result.rejected["line_number"].tolist() == [5, 7, 8]

    # A file in order but for a row without a session is not sorted again.
    seen.clear()
    orders = []
    monkeypatch.setattr(ingest, "sort_by_code_and_time",
                        lambda codes, t: orders.append(sort_by_code_and_time(codes, t)[0]) or
                        sort_by_code_and_time(codes, t))
    lines = [f"u{i},{s},-2416201411472988629,{1655993031000 + i},2,10.0,20.0"
             for i, s in enumerate(["s1", "s1", "", "s1", "s2", " ", "s2"])]
    result = read_events(write(tmp_path, lines), labelled=True)
    assert orders == [None]
    assert result.events["source_line"].tolist() == [2, 3, 5, 6, 8]
    assert result.rejected["line_number"].tolist() == [4, 7]


def test_csv_block_size_keeps_a_few_blocks_per_cpu():
    from mouse_pipeline.ingest import csv_block_size

    assert csv_block_size(1_453_526, cpus=2) == 1 << 20  # a small file: Arrow's default
    assert csv_block_size(259_000_000, cpus=2) == 16 << 20  # at most 16 MB
    assert csv_block_size(259_000_000, cpus=16) == 259_000_000 // 64  # four blocks per CPU


def test_many_blocks_read_as_one(tmp_path, monkeypatch):
    """Every rule, the line numbers and the order come out the same whether the file is read in one
    block or in many (the columns then have many chunks)."""
    import pyarrow as pa

    from mouse_pipeline import ingest

    rng = np.random.default_rng(5)
    lines = []
    for i in range(400):
        session, t = f"s{rng.integers(0, 7)}", 1655993031000 + int(rng.integers(0, 10**6))
        lines.append(f"u{i},{session},-24162014114729886{rng.integers(20, 23)},{t},{rng.choice([1, 2, 3, 4, 5])},"
                     f"{rng.integers(0, 1920)}.5,{rng.integers(0, 1080)}.0")
    for i, bad in zip(rng.choice(400, 40, replace=False), ["x", "1.65599E+12", "", "9", "-2.4162E+18"] * 8):
        fields = lines[i].split(",")
        fields[int(rng.integers(0, 7))] = bad
        lines[i] = ",".join(fields)
    lines[10] = "u10,s1,only,four"  # malformed
    lines += [lines[3], lines[77]]  # exact duplicates at the end
    lines.insert(200, lines[5].replace(",2,", ",3,", 1) if ",2," in lines[5] else lines[5] + "0")  # a reused uid
    path = write(tmp_path, lines)
    whole = read_events(path, labelled=True)
    monkeypatch.setattr(ingest, "csv_block_size", lambda file_bytes, cpus=None: 1024)
    blocks = read_events(path, labelled=True)
    pd.testing.assert_frame_equal(whole.events, blocks.events)
    pd.testing.assert_frame_equal(whole.rejected, blocks.rejected)
    assert whole.counts() == blocks.counts() and whole.rows_rejected > 20
    # The events frame's string columns in chunks of 7 rows: the same frame.
    monkeypatch.setattr(ingest, "OUTPUT_CHUNK_ROWS", 7)
    chunked = read_events(path, labelled=True)
    assert pa.array(chunked.events[c.UID].array).num_chunks > 40  # pandas hands over its chunked array
    pd.testing.assert_frame_equal(whole.events, chunked.events)


def test_fixed_width_records_are_values_of_one_byte_length_or_empty():
    import pyarrow as pa

    from mouse_pipeline.ingest import fixed_width_records

    assert fixed_width_records(pa.array(["ab", "cd", "é"])).width == 2  # bytes, not characters: é is two
    assert fixed_width_records(pa.array(["ab", "cd"], pa.large_string())).index is None
    assert fixed_width_records(pa.array(["abc", "d", "ef", "gh"]).slice(2)).width == 2  # the slice's values
    with_empty = fixed_width_records(pa.array(["ab", "", "cd", "", "ef"]))
    assert with_empty.width == 2 and with_empty.index.tolist() == [0, -1, 1, -1, 2]
    for values in (pa.array(["ab", "c"]), pa.array(["a", "bc"]), pa.array(["", ""]), pa.array(["ab", None]),
                   pa.array([], pa.string()), pa.chunked_array([pa.array(["ab"])]), pa.array([b"ab"], pa.binary()),
                   pa.array(["ab", "a", "abc"])):  # as many bytes as three values of two, but not one width
        assert fixed_width_records(values) is None, values


def test_take_strings_gives_what_arrow_takes():
    import pyarrow as pa

    from mouse_pipeline.ingest import fixed_width_records, take_strings

    rng = np.random.default_rng(9)
    uuids = pa.array([f"{rng.integers(0, 16**8):08x}-{i:04d}-é" for i in range(300)]).slice(7)
    rows = rng.integers(0, len(uuids), 1000)
    some_empty = pa.array(["ab", "", "cd", "ef", ""] * 3).slice(1)
    for values in (uuids, pa.array(["ab", "cde", ""] * 5), pa.array(["x"] * 9, pa.large_string()), some_empty):
        records = fixed_width_records(values)
        for picked in (rows % len(values), np.flatnonzero(pc_length(values))):  # the second: no empty value
            taken = take_strings(values, picked, records)
            assert taken.to_pylist() == values.take(pa.array(picked)).to_pylist()
            taken.validate(full=True)
    assert take_strings(some_empty, [1, 2, 4], fixed_width_records(some_empty)).type == pa.large_string()
    assert take_strings(some_empty, [0, 1], fixed_width_records(some_empty)).type == pa.string()  # "": Arrow's
    assert fixed_width_records(uuids).width == len("00000000-0000-é".encode())
    assert take_strings(uuids, np.zeros(0, dtype=np.int64), fixed_width_records(uuids)).to_pylist() == []
    for bad in ([len(uuids)], [-1]):
        with pytest.raises(IndexError):
            take_strings(uuids, np.array(bad), fixed_width_records(uuids))


def pc_length(values):
    import pyarrow.compute as pc

    return pc.binary_length(values).to_numpy() > 0


def test_ids_of_one_width_make_the_same_events_frame_as_arrows_take(tmp_path, monkeypatch):
    """UUIDs (and sessions and users of one width) are gathered as fixed-width records: the events
    frame is the one Arrow's take makes, in chunks or not."""
    import pyarrow as pa

    from mouse_pipeline import ingest

    rng = np.random.default_rng(11)
    lines = [f"{rng.integers(0, 16**12):012x}-{i:05d},sess-{rng.integers(0, 5)},-24162014114729886{rng.integers(10, 13)},"
             f"{1655993031000 + int(rng.integers(0, 10**6))},2,{rng.integers(0, 1920)},{rng.integers(0, 1080)}"
             for i in range(501)]
    lines[3] = "," + lines[3].split(",", 1)[1]  # an empty uid: rejected, and the other uids still records
    path = write(tmp_path, lines)
    monkeypatch.setattr(ingest, "OUTPUT_CHUNK_ROWS", 64)
    widths = []
    take_strings = ingest.take_strings
    monkeypatch.setattr(ingest, "take_strings", lambda values, rows, records=None: widths.append(records and records.width) or
                        take_strings(values, rows, records))
    result = read_events(path, labelled=True)
    records = result.events
    assert result.rows_rejected == 1 and len(records) == 500
    assert set(widths) == {18, 6, 20} and len(widths) == 3 * 8  # uid, session, user; 8 chunks each
    assert pa.array(records[c.UID].array).num_chunks == 8
    monkeypatch.setattr(ingest, "fixed_width_records", lambda values: None)  # Arrow's take, string by string
    pd.testing.assert_frame_equal(records, read_events(path, labelled=True).events)


def test_event_types_of_one_character_are_read_from_their_bytes_as_the_cast_reads_them(monkeypatch):
    import pyarrow as pa

    from mouse_pipeline import ingest

    single = pa.chunked_array([pa.array(["1", "5", "0", "9", "x", " ", "+"]), pa.array(["3", "2", "4", "-", "."])])
    fast = ingest._parse_event_type(single)
    assert ingest._single_bytes(single) is not None
    assert fast[0].tolist() == [1, 5, 0, 0, 0, 0, 0, 3, 2, 4, 0, 0]
    monkeypatch.setattr(ingest, "_single_bytes", lambda text: None)
    slow = ingest._parse_event_type(single)
    assert all((a == b).all() and a.dtype == b.dtype for a, b in zip(fast, slow))
    # Columns that are not all one byte wide go the other way, whichever chunk holds the wider value.
    monkeypatch.undo()
    for mixed in (pa.array(["1", "2.0"]), pa.chunked_array([pa.array(["1"]), pa.array(["é"])]), pa.array(["1", ""])):
        assert ingest._single_bytes(mixed) is None
