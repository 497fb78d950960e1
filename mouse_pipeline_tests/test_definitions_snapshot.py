"""A snapshot of the definitions: any change of the graph shows up in review as a diff of a text file.

Asset keys with their groups, checks with their blocking flags, jobs,
schedules and sensors of the code location are listed in
``snapshots/definitions.txt``. When a change of the graph is intended,
regenerate it with ``UPDATE_SNAPSHOTS=1 python -m pytest mouse_pipeline_tests/test_definitions_snapshot.py``
and commit the new file with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.settings import Settings
from mouse_pipeline_tests.conftest import pipeline_resources

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.txt"


def describe(name: str, defs: dg.Definitions) -> list[str]:
    """One line per asset, check, job, schedule and sensor of ``defs``, sorted within each kind."""
    graph = defs.resolve_asset_graph()
    lines = [f"[{name}]"]
    assets = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        traits = [f"group={node.group_name}"]
        if node.partitions_def is not None:
            traits.append(f"partitions={getattr(node.partitions_def, 'name', None) or type(node.partitions_def).__name__}")
        if not node.is_executable:
            traits.append("external")
        assets.append(f"asset {key.to_user_string()} {' '.join(traits)}")
    lines += sorted(assets)
    checks = []
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        checks.append(f"check {check_key.asset_key.to_user_string()}:{check_key.name}"
                      f" blocking={'yes' if spec.blocking else 'no'}")
    lines += sorted(checks)
    lines += sorted(f"job {job.name}" for job in defs.resolve_all_job_defs() if not job.name.startswith("__"))
    lines += sorted(f"schedule {s.name} job={s.job_name} cron={s.cron_schedule}" for s in defs.schedules or [])
    lines += sorted(f"sensor {s.name} jobs={','.join(sorted(j.name for j in s.jobs))}" for s in defs.sensors or [])
    return lines


def test_definitions_match_the_checked_in_snapshot(tmp_path):
    resources = pipeline_resources(tmp_path)
    locations = {"mouse_pipeline": build_definitions(resources, Settings())}  # defaults, whatever the environment
    current = "\n".join(line for name, defs in locations.items() for line in describe(name, defs)) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    assert current == SNAPSHOT.read_text(), (
        "the definitions changed; if that is intended, regenerate the snapshot with UPDATE_SNAPSHOTS=1 "
        "and commit it with the change")
