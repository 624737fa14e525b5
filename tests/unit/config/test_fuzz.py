"""Issue 13 item 12: a fuzz of bad run configs through `inferswarm validate`.

Hundreds of generated bad configs (numeric extremes, bad URLs and ports, credentials in URLs, deep
nesting, alias bombs, wrong types, unknown keys, huge files, undecodable bytes, missing secrets) each give
exactly one line on stderr that names the file, exit code 2 and no traceback. The cases run in this
process through `inferswarm.cli.main` (a SIGALRM per case is the hang detector); a handful run as real
`python -m inferswarm.cli validate` processes to prove the exit code end to end.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from inferswarm.cli import main
from inferswarm.config.loading import MAX_FILE_BYTES
from tests.conftest import REPO, base_config

HANG_S = 10  # a case that takes this long is a hang, not a slow case
SECRET = "hunter2pw"

RAMP = {"shape": "ramp", "step_users": 1, "step_duration_s": 1, "max_users": 2}
STAGES = {"shape": "stages", "stages": [{"duration_s": 1, "users": 1}]}
CYCLE = {"shape": "cycle", "packets": 2, "interval_s": 1}

# (load base, dotted path) of every numeric field a run config has
NUMERIC_FIELDS: list[tuple[dict[str, Any], str]] = [
    (RAMP, "target.connect_timeout_s"),
    (RAMP, "target.request_timeout_s"),
    (RAMP, "target.max_response_bytes"),
    (RAMP, "capabilities.0.weight"),
    (RAMP, "capabilities.0.request_timeout_s"),
    (RAMP, "load.step_users"),
    (RAMP, "load.step_duration_s"),
    (RAMP, "load.max_users"),
    (RAMP, "load.hold_s"),
    (RAMP, "load.spawn_rate"),
    (RAMP, "load.per_user_rps"),
    (STAGES, "load.stages.0.duration_s"),
    (STAGES, "load.stages.0.users"),
    (STAGES, "load.stages.0.spawn_rate"),
    (CYCLE, "load.packets"),
    (CYCLE, "load.interval_s"),
    (CYCLE, "load.cycles"),
    (RAMP, "telemetry.interval_s"),
    (RAMP, "telemetry.saturation_cpu_pct"),
    (RAMP, "report.warmup_s"),
    (RAMP, "report.saturation.min_gain"),
    (RAMP, "report.saturation.latency_rise"),
    (RAMP, "report.saturation.max_failure_ratio"),
]
# None of these is valid for any of those fields (strict types: no bool or str for a number).
EXTREMES: list[Any] = [
    float("inf"),
    float("-inf"),
    float("nan"),
    -1,
    1e308,
    10**15,
    10**40,
    "abc",
    [1],
    True,
]

BAD_URLS = [
    "http://127.0.0.1:99999",
    "http://127.0.0.1:abc",
    "http://127.0.0.1:0",
    "http://127.0.0.1:-1",
    "http://:8000",
    "http://",
    "abc",
    "localhost:8000",
    "ftp://127.0.0.1",
    "http//127.0.0.1",
    "http://[::1",
    "http://127.0.0.1/a b",
    "http://127.0.0.1\n:8000",
    f"http://user:{SECRET}@127.0.0.1:8000",
    f"https://{SECRET}@127.0.0.1",
    "",
]

ALIAS_BOMB = "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, n in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True)
)


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def generate_cases() -> Iterator[tuple[str, str | bytes]]:
    """(id, file content) of bad configs, each of which `validate` must refuse."""
    for load, dotted in NUMERIC_FIELDS:
        for value in EXTREMES:
            yield f"{dotted}={value!r}"[:80], _dump(_set(base_config(load=load), dotted, value))
    for url in BAD_URLS:
        yield f"base_url={url!r}", _dump(_set(base_config(), "target.base_url", url))
        yield f"agent={url!r}", _dump(base_config(telemetry={"agents": [{"url": url}]}))
        yield f"prometheus={url!r}", _dump(base_config(telemetry={"prometheus": [{"url": url}]}))
    for opener in ["[", "{", "{a: ", "[[{b: "]:
        yield f"nesting {opener}", "name: t\ndescription: " + opener * 20_000 + "\n"
    yield "nesting block", "".join("  " * i + "-\n" for i in range(300))
    yield "alias bomb", ALIAS_BOMB
    yield "alias bomb in params", _dump(base_config()).replace("prompt: a cat", "prompt: *i") + ALIAS_BOMB
    yield "recursive alias", "a: &x [1, *x]\n"
    yield "recursive mapping alias", "a: &x {b: *x}\n"
    for name, top in [("list", [1, 2]), ("string", "run"), ("number", 3), ("null", None)]:
        yield f"top level {name}", _dump(top)
    wrong_types: list[tuple[str, Any]] = [
        ("target", "http://127.0.0.1:8000"),
        ("capabilities", {"name": "x"}),
        ("capabilities.0", "text-to-image"),
        ("load", ["ramp"]),
        ("load.shape", 3),
        ("name", 7),
        ("name", ""),
        ("name", "x" * 500),
        ("slo", "p95_ms < 2000"),
        ("target.headers", ["a"]),
        ("target.headers", {"X-Bad\nName": "v"}),
        ("target.headers", {"X-Ok": "line\r\nInjected: 1"}),
        ("target.secret_headers", [{"header": "Authorization", "env": "1BAD"}]),
        ("telemetry.enabled", "yes"),
        ("capabilities.0.success", {"status": [999]}),
    ]
    for dotted, value in wrong_types:
        yield f"type {dotted}={value!r}"[:80], _dump(_set(base_config(), dotted, value))
    for dotted in ["colour", "target.base_ur", "load.step_user", "telemetry.agent", "capabilities.0.prams"]:
        yield f"unknown {dotted}", _dump(_set(base_config(), dotted, 1))
    yield "huge comment", _dump(base_config()) + "#" * MAX_FILE_BYTES + "\n"
    yield "huge string", _dump(base_config(description="x" * (MAX_FILE_BYTES + 1)))
    yield "huge integer", "name: " + "9" * 5000 + "\n"
    yield "bad timestamp", "name: 2024-13-45\n"
    yield "unhashable key", "? [1, 2]\n: 3\n"
    yield "duplicate key", _dump(base_config()) + "name: again\n"
    yield "python tag", "name: !!python/object/apply:os.system ['true']\n"
    yield "syntax error", "name: [unclosed\n"
    yield "tab indent", "target:\n\tbase_url: x\n"
    yield "not utf-8", b"name: \xff\xfe\n"
    yield "nul byte", "name: a\x00b\n"
    for index in range(3):
        data = base_config()
        data["target"]["secret_headers"] = [
            {"header": "Authorization", "env": f"INFERSWARM_FUZZ_UNSET_{index}"}
        ]
        yield f"missing secret {index}", _dump(data)
    yield "target settings", (REPO / "configs" / "demo-target.yaml").read_text()
    yield "plan too long", _dump(base_config(load={**RAMP, "max_users": 100, "step_duration_s": 7000}))
    yield "too many steps", _dump(base_config(load={**RAMP, "max_users": 20_000}))


CASES = list(generate_cases())


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang


def _write(tmp_path: Path, index: int, content: str | bytes) -> Path:
    path = tmp_path / f"case-{index:03d}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_the_fuzz_covers_enough_cases() -> None:
    assert len(CASES) >= 100
    assert len({name for name, _ in CASES}) == len(CASES)


def test_every_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(3):
        monkeypatch.delenv(f"INFERSWARM_FUZZ_UNSET_{index}", raising=False)
    monkeypatch.delenv("INFERSWARM_AGENTS", raising=False)
    monkeypatch.delenv("INFERSWARM_LOAD", raising=False)
    previous = signal.signal(signal.SIGALRM, _alarm)
    problems: list[str] = []
    slowest = (0.0, "")
    try:
        for index, (name, content) in enumerate(CASES):
            path = _write(tmp_path, index, content)
            started = time.perf_counter()
            signal.alarm(HANG_S)
            try:
                code = main(["validate", str(path)])
            except _Hang:
                problems.append(f"{name}: still running after {HANG_S} s")
                continue
            except BaseException as exc:  # any escape is a finding
                problems.append(f"{name}: raised {type(exc).__name__}: {exc}"[:300])
                continue
            finally:
                signal.alarm(0)
            slowest = max(slowest, (time.perf_counter() - started, name))
            out = capsys.readouterr()
            lines = out.err.splitlines()
            if code != 2:
                problems.append(f"{name}: exit {code}")
            if len(lines) != 1 or not lines[0].startswith(f"inferswarm: {path}: "):
                problems.append(f"{name}: stderr {out.err[:300]!r}")
            if "Traceback" in out.err or SECRET in out.err + out.out:
                problems.append(f"{name}: traceback or secret in {out.err[:300]!r}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not problems, "\n".join(problems)
    print(f"slowest case: {slowest[1]} ({slowest[0]:.3f} s)")


SUBPROCESS_CASES = [
    "load.max_users=1000000000000000",
    "target.request_timeout_s=inf",
    "base_url='http://127.0.0.1:99999'",
    f"base_url='http://user:{SECRET}@127.0.0.1:8000'",
    "nesting [",
    "alias bomb",
    "missing secret 0",
    "target settings",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_configs_end_to_end(tmp_path: Path, name: str) -> None:
    index, content = next((i, c) for i, (n, c) in enumerate(CASES) if n == name)
    path = _write(tmp_path, index, content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERSWARM_")}
    done = subprocess.run(
        [sys.executable, "-m", "inferswarm.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=HANG_S * 3,  # the interpreter's start-up included
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"inferswarm: {path}: ")
    assert "Traceback" not in done.stderr and SECRET not in done.stderr
