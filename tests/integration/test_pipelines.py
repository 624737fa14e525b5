"""The shipped AI-pipeline configs, run headless by `inferswarm run` against the reference target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inferswarm.protocols.livepeer import PIPELINES
from tests.conftest import REPO
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration
CONFIGS = REPO / "configs"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> tuple[str, str]:
    proc = inferswarm("run", *args, env=env)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def rows_by_name(run_dir: Path) -> dict[str, dict[str, str]]:
    return {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}


def test_every_gateway_pipeline_succeeds_and_llm_timings_are_statistics(tmp_path: Path) -> None:
    run(
        str(CONFIGS / "livepeer-gateway.yaml"),
        "--serve-target",
        str(CONFIGS / "livepeer-target.yaml"),
        "--out",
        str(tmp_path),
    )
    run_dir = only_run_dir(tmp_path)
    stats = rows_by_name(run_dir)
    pipelines = list(PIPELINES)  # the config has one capability per pipeline, named after it
    for name in pipelines:
        assert int(stats[name]["Request Count"]) >= 5, name
        assert stats[name]["Failure Count"] == "0", name
    assert read_csv(run_dir / "locust_failures.csv") == []
    # derived LLM entries: the target sends the first token 60 ms after a slot is free, then one per 10 ms
    ttft, itl = stats["llm:ttft"], stats["llm:itl"]
    assert ttft["Type"] == "LLM" and 60 <= float(ttft["Median Response Time"]) < 130
    assert 9.5 <= float(itl["Average Response Time"]) < 16
    tokens = stats["llm:output_tokens"]
    assert tokens["Type"] == "tokens(usage)" and float(tokens["Average Response Time"]) == 24
    assert int(ttft["Request Count"]) == int(stats["llm"]["Request Count"])
    # derived entries are not requests: the Aggregated row counts only the pipelines
    total = sum(int(stats[n]["Request Count"]) for n in pipelines)
    assert int(stats["Aggregated"]["Request Count"]) == total
    # async image-to-video is timed from submit to result: at least its 560-640 ms service time
    assert float(stats["image-to-video"]["Min Response Time"]) >= 550
    results = read_json(run_dir / "results.json")
    llm = results["pipelines"]["llm"]
    assert llm["token_source"] == "usage" and 60 <= llm["ttft_ms"]["p50"] < 130
    images = results["pipelines"]["text-to-image"]
    assert images["outputs_per_request"] == 1 and images["outputs_per_s"] > 0
    assert images["s_per_output"] == pytest.approx(images["mean_latency_s"])
    audio = results["pipelines"]["audio-to-text"]
    assert audio["audio_s"] == pytest.approx(1.0) and audio["real_time_factor"] > 5  # 1 s of audio in ~0.09 s
    assert "llm" in (run_dir / "summary.md").read_text()


def test_capacity_503s_are_classified_once_load_exceeds_the_slots(tmp_path: Path) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(
        yaml.safe_dump(
            {
                "slots": 1,
                "queue_depth": 0,
                "capabilities": {
                    "text-to-image": {"service_time": {"distribution": "fixed", "mean_ms": 100}}
                },
            }
        )
    )
    config = yaml.safe_load((CONFIGS / "livepeer-gateway.yaml").read_text())
    config["capabilities"] = config["capabilities"][:1]
    config["load"] = {"shape": "stages", "stages": [{"duration_s": 3, "users": 4}]}  # back to back
    config["assets_dir"] = str(REPO / "test-assets")
    path = tmp_path / "overload.yaml"
    path.write_text(yaml.safe_dump(config))
    run(str(path), "--serve-target", str(target), "--out", str(tmp_path / "out"), "--no-report")
    run_dir = only_run_dir(tmp_path / "out")
    failures = read_csv(run_dir / "locust_failures.csv")
    assert [f["Error"] for f in failures] == ["capacity: HTTP 503: Service Unavailable Error"]
    stats = rows_by_name(run_dir)["text-to-image"]
    assert 0 < int(stats["Failure Count"]) < int(stats["Request Count"])
    codes = {r["status"]: int(r["count"]) for r in read_csv(run_dir / "locust_status_codes.csv")}
    # the status table is written at quit, after Locust's last CSV flush: at most one request per user later
    assert set(codes) == {"200", "503"} and 0 <= codes["503"] - int(failures[0]["Occurrences"]) <= 4


def test_openai_streams_report_ttft_itl_and_usage_tokens(tmp_path: Path) -> None:
    short = json.dumps({"shape": "stages", "stages": [{"duration_s": 4, "users": 2}]})
    run(
        str(CONFIGS / "openai-llm.yaml"),
        "--serve-target",
        str(CONFIGS / "openai-target.yaml"),
        "--out",
        str(tmp_path),
        "--no-report",
        env={"INFERSWARM_LOAD": short},
    )
    stats = rows_by_name(only_run_dir(tmp_path))
    for name in ("chat", "completions"):
        assert int(stats[name]["Request Count"]) >= 2 and stats[name]["Failure Count"] == "0"
        assert 100 <= float(stats[f"{name}:ttft"]["Median Response Time"]) < 180  # ttft_ms: 100
        assert 14.5 <= float(stats[f"{name}:itl"]["Average Response Time"]) < 25  # token_delay_ms: 15
        assert stats[f"{name}:tokens_per_s"]["Type"] == "tokens(usage)"


def test_cycle_mode_counts_every_cycle_and_prints_seed_000s_summary(tmp_path: Path) -> None:
    target = tmp_path / "target.yaml"
    fast = {"service_time": {"distribution": "fixed", "mean_ms": 20}}
    target.write_text(
        yaml.safe_dump(
            {
                "capabilities": {
                    "text-to-image": fast,
                    "prompt-enhance": {**fast, "error_rate": 1.0},
                    "gpu-check": fast,
                }
            }
        )
    )
    out, _ = run(
        str(CONFIGS / "capability-tester.yaml"),
        "--serve-target",
        str(target),
        "--out",
        str(tmp_path / "o"),
        "--no-report",
        "-x",
        "5",
        "-y",
        "text-to-image",
        "prompt-enhance",
        "gpu-check",
        "-z",
        "1",
        "--cycles",
        "3",
    )
    run_dir = only_run_dir(tmp_path / "o")
    cycles = read_csv(run_dir / "locust_cycles.csv")
    table = {(int(r["cycle"]), r["name"]): (int(r["ok"]), int(r["failed"]), int(r["missed"])) for r in cycles}
    # 5 packets round-robin over 3 capabilities: 2, 2, 1 per cycle; prompt-enhance always answers 500
    for cycle in (1, 2, 3):
        assert table[(cycle, "text-to-image")] == (2, 0, 0)
        assert table[(cycle, "prompt-enhance")] == (0, 2, 0)
        assert table[(cycle, "gpu-check")] == (1, 0, 0)
    assert len(table) == 9
    summary = (run_dir / "cycle_summary.txt").read_text()
    assert "STATISTICS SUMMARY (after 3 cycles)" in summary
    section = summary.split("PROMPT-ENHANCE")[1].split("GPU-CHECK")[0]
    assert "Total requests: 6" in section and "Failed: 6" in section and "Success rate: 0.00%" in section
    assert "Status codes: {500: 6}" in section and "server_error: HTTP 500: Internal Server Error" in section
    t2i = summary.split("TEXT-TO-IMAGE")[1].split("PROMPT-ENHANCE")[0]
    assert "Total requests: 6" in t2i and "Success rate: 100.00%" in t2i and "Status codes: {200: 6}" in t2i
    assert "cycle 3: 5 sent (gpu-check 1, prompt-enhance 2, text-to-image 2), 3 ok, 2 failed, 0 missed" in out
    # a summary after cycles 1 and 2; the run ends with cycle 3, so the last one is the final summary
    assert out.count("STATISTICS SUMMARY") == 3 and out.rindex("(after 3 cycles)") > out.rindex("cycle 3:")
    stats = rows_by_name(run_dir)
    assert int(stats["Aggregated"]["Request Count"]) == 15
