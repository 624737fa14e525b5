"""results.json's contract: the committed JSON Schema is the models', a report's results.json fits it and
reads back unchanged, a file of another schema version is refused in one line, and a file written
before steps had an axis still reads (its steps placed by users)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from inferswarm.cli import main
from inferswarm.report.results import (
    SCHEMA_VERSION,
    USERS,
    ResultsFileError,
    format_level,
    json_schema_text,
    read_results,
)
from tests.conftest import REPO
from tests.unit.report.synthetic import RAMP, write_run

SCHEMA_FILE = REPO / "docs" / "results.schema.json"
SCRIPT = [sys.executable, str(REPO / "scripts" / "results_schema.py")]


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def reported(run: Path) -> dict[str, Any]:
    assert main(["report", str(run), "--no-png"]) in (0, 3)
    document: dict[str, Any] = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return document


def with_workers_and_pipelines(run: Path) -> Path:
    """What a distributed run of a pipeline records in run.json: its workers, a saturated generator
    and what each request produces."""
    record = json.loads((run / "run.json").read_text())
    record["capabilities_info"] = {
        "cap": {"kind": "livepeer", "pipeline": "text-to-image", "model": "m", "outputs_per_request": 2}
    }
    record["generator_saturation"] = {
        "threshold_cpu_pct": 90.0,
        "saturated": True,
        "nodes": {"w@a/1": {"first_epoch_s": 1.5, "last_epoch_s": 9.0, "samples": 3, "peak_cpu_pct": 97.5}},
    }
    gone = {
        "id": "b",
        "index": 1,
        "node": "w@b/2",
        "pid": 2,
        "last_seen_at": "2023-11-14T22:13:30.000Z",
        "last_seen_epoch_s": 1_700_000_010.0,
        "detected_at": "2023-11-14T22:13:40.000Z",
        "detected_epoch_s": 1_700_000_020.0,
        "t_s": 10.0,
        "users": 3,
    }
    record["workers"] = {
        "report_interval_s": 3.0,
        "joined": [{"id": "a", "node": "w@a/1"}, {"id": "b", "node": "w@b/2"}],
        "refused": [{"id": "c", "node": "w@c/3", "problems": ["version differs"]}],
        "lost": [gone],
        "left": [],
    }
    (run / "run.json").write_text(json.dumps(record))
    with (run / "locust_stats.csv").open("a") as stats:  # an LLM timing, as a derived entry
        stats.write("LLM,cap:ttft,50,0,60,61.5,50,80,0,1.0,0," + ",".join(["65"] * 11) + "\n")
    return run


def test_committed_schema_is_the_models() -> None:
    # on failure: scripts/results_schema.py --write (and a new SCHEMA_VERSION if old files no longer fit)
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text()
    jsonschema.Draft202012Validator.check_schema(schema())


def test_schema_script_checks_and_writes(tmp_path: Path) -> None:
    assert subprocess.run([*SCRIPT, "--check"], cwd=REPO, capture_output=True).returncode == 0
    stale = tmp_path / "results.schema.json"
    stale.write_text(json_schema_text().replace('"title": "Results"', '"title": "Old"'))
    proc = subprocess.run(
        [*SCRIPT, "--check", "--file", str(stale)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "stale" in proc.stderr
    assert subprocess.run([*SCRIPT, "--write", "--file", str(stale)], cwd=REPO).returncode == 0
    assert stale.read_text() == json_schema_text()
    printed = subprocess.run(SCRIPT, cwd=REPO, capture_output=True, text=True)
    assert printed.stdout == json_schema_text()


@pytest.mark.parametrize("telemetry", [True, False])
def test_results_json_fits_the_schema_and_reads_back(tmp_path: Path, telemetry: bool) -> None:
    run = write_run(
        tmp_path / "run", RAMP, slo=["p95_ms < 1000", "gpu_util_mean_pct > 99"], telemetry=telemetry
    )
    document = reported(with_workers_and_pipelines(run))
    jsonschema.validate(document, schema())
    assert document["schema"] == SCHEMA_VERSION
    assert document["step_axis"] == {"column": "users", "label": "users"}
    assert [s["level"] for s in document["steps"]] == [s["users"] for s in document["steps"]]
    results = read_results(run / "results.json")
    assert results.workers is not None and results.workers.lost[0].how == "lost"
    assert results.pipelines["cap"].ttft_ms is not None and results.generator_saturation is not None
    # written from the model: reading the file and writing it again changes nothing
    assert results.model_dump(mode="json") == document
    assert json.dumps(results.model_dump(mode="json"), indent=2) + "\n" == (run / "results.json").read_text()


def test_other_schema_version_or_content_is_one_line(tmp_path: Path) -> None:
    document = reported(write_run(tmp_path / "run", RAMP))
    path = tmp_path / "results.json"
    for content, message in (
        ({**document, "schema": 7}, f"results.json schema 7, this inferswarm reads {SCHEMA_VERSION}"),
        ({**document, "schema": "1"}, f'results.json schema "1", this inferswarm reads {SCHEMA_VERSION}'),
        (
            {k: v for k, v in document.items() if k != "schema"},
            "results.json schema none, this inferswarm reads",
        ),
        ({**document, "notes": "none"}, "not a results.json this inferswarm reads (1 problem(s); notes: "),
        ({**document, "extra": 1}, "not a results.json this inferswarm reads (1 problem(s); extra: "),
    ):
        path.write_text(json.dumps(content))
        with pytest.raises(ResultsFileError) as raised:
            read_results(path)
        assert str(raised.value).startswith(f"{path}: {message}") and "\n" not in str(raised.value)
    path.write_text("{truncated")
    with pytest.raises(ResultsFileError, match=r"not a results.json this inferswarm reads \(1 problem"):
        read_results(path)


def test_results_json_from_before_the_step_axis_reads(tmp_path: Path) -> None:
    document = reported(write_run(tmp_path / "run", RAMP, slo=["p95_ms < 1000"]))
    del document["step_axis"]
    for step in document["steps"]:
        del step["level"]
    del document["saturation"]["level"], document["saturation"]["knee_level"]
    del document["slo"]["highest_passing_step"]["level"]
    jsonschema.validate(document, schema())  # still schema 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    old = read_results(path)
    assert old.step_axis == USERS and [s.level for s in old.steps] == [2, 4, 6, 8]
    assert old.saturation is not None and (old.saturation.level, old.saturation.knee_level) == (6, 4)
    assert old.slo.highest_passing_step is not None and old.slo.highest_passing_step.level == 4


def test_format_level() -> None:
    assert [format_level(v) for v in (12, 12.0, 2.5, 0.1235, 0.3 - 0.1)] == [
        "12",
        "12",
        "2.5",
        "0.1235",
        "0.2",
    ]
