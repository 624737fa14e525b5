#!/usr/bin/env python3
"""The compose stress test on a real container engine: build the image, start docker-compose.yml's
target, agent, master and N workers, run a short headless test, check the run directory on the host,
tear everything down (also on failure, Ctrl+C or SIGTERM). Standard library only: it runs before any
project environment exists.

    scripts/compose-smoke                    # prepare the engine if needed, build, run, check (2 workers)
    scripts/compose-smoke prepare            # only the engine: packages, settings, base image, tools
    scripts/compose-smoke --workers 1 --users 16 --duration 20 --no-wait   # a throughput figure

The engine: Docker with its compose plugin where a Docker daemon answers, else Podman driven by
podman-compose. For Podman, `prepare` installs what is missing (apt: podman, runc, debootstrap; a
virtual environment with podman-compose under the cache folder), writes engine settings that work
without systemd and on cgroups v1 (unless CONTAINERS_CONF is already set), and finds a base image:
python:3.11-slim where a registry answers, otherwise a Debian bookworm image made with debootstrap from
the apt mirror. Python packages for the image come from a wheelhouse built on the host (the host's pip
and its settings: mirrors, CA bundle) and mounted into the build. Everything is cached in
$XDG_CACHE_HOME/inferswarm/compose-smoke, so a second run only builds the image and runs the stack.

All services share the host's network (deploy/compose/host-network.yml) and bind 127.0.0.1: the load
never leaves the machine. Ports 8000, 9109, 5557 and 8089 must be free.

Exit codes: 0 the check passed; 1 it failed (the problems are listed, the containers' logs are kept
next to the results); 2 bad usage or a busy port; 77 skipped: no engine here and none can be installed
(the reason is printed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
PROJECT = "inferswarm-smoke"
IMAGE = "inferswarm:latest"
DEBIAN_BASE = "localhost/inferswarm-base:bookworm"
OFFICIAL_BASE = "docker.io/library/python:3.11-slim"
COMPOSE_FILES = ["docker-compose.yml", "deploy/compose/host-network.yml"]
PORTS = {8000: "target", 9109: "agent", 5557: "master (workers)", 8089: "master (web UI)"}
EXIT_SKIP = 77


class Skip(Exception):
    """The engine cannot run here at all: a reason, not a failure."""


class Failed(Exception):
    """A step failed: one line saying which and why."""


def say(message: str) -> None:
    print(f"compose-smoke: {message}", flush=True)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "inferswarm" / "compose-smoke"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(
    cmd: Sequence[str], timeout_s: float, *, check: bool = True, quiet: bool = False, **kw: object
) -> str:
    """A command's output (stdout and stderr), bounded in time; Failed with its last lines otherwise."""
    try:
        proc = subprocess.run(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s, **kw
        )  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"`{' '.join(cmd[:3])} ...` did not finish in {timeout_s:.0f} s") from exc
    except FileNotFoundError as exc:
        raise Failed(f"{cmd[0]}: not found") from exc
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise Failed(f"`{' '.join(cmd[:4])} ...` exited {proc.returncode}:\n{tail}")
    if not quiet and proc.stdout.strip() and os.environ.get("COMPOSE_SMOKE_VERBOSE"):
        print(proc.stdout, end="", flush=True)
    return str(proc.stdout)


def succeeds(cmd: Sequence[str], timeout_s: float = 30) -> bool:
    try:
        return subprocess.run(list(cmd), capture_output=True, timeout=timeout_s).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# --- the engine ------------------------------------------------------------------------------------


@dataclass
class Engine:
    """A container CLI (docker or podman) and the compose command that drives it."""

    name: str
    compose: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str) -> list[str]:
        return [self.name, *args]

    def compose_cmd(self, *args: str) -> list[str]:
        files = [a for f in COMPOSE_FILES for a in ("-f", str(REPO / f))]
        return [*self.compose, "-p", PROJECT, *files, *args]


def docker_engine() -> Engine | None:
    if (
        shutil.which("docker")
        and succeeds(["docker", "info"], 20)
        and succeeds(["docker", "compose", "version"])
    ):
        return Engine("docker", ["docker", "compose"])
    return None


def apt_install(packages: Sequence[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Skip(
            f"no container engine, and {' '.join(packages)} cannot be installed here (needs root and apt)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *packages]
    if not succeeds(install, 600):
        run(["apt-get", "update", "-qq"], 300, env=env)
        run(install, 600, env=env)


def podman_settings(cache: Path) -> dict[str, str]:
    """CONTAINERS_CONF for machines without systemd, on cgroups v1 or hybrid, where a container may not
    set its open-files limit. A user's own CONTAINERS_CONF wins."""
    if os.environ.get("CONTAINERS_CONF"):
        return {}
    cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    lines = [
        "[containers]",
        "default_ulimits = []   # raising RLIMIT_NOFILE is refused in some sandboxes",
        "[engine]",
        'cgroup_manager = "cgroupfs"   # no systemd here',
        'events_logger = "file"',
    ]
    if not cgroup_v2 and shutil.which("runc"):
        lines.append('runtime = "runc"   # crun refuses cgroups v1 / hybrid')
    conf = cache / "containers.conf"
    conf.write_text("\n".join(lines) + "\n")
    return {"CONTAINERS_CONF": str(conf)}


def tools(cache: Path) -> Path:
    """The bin folder of this script's own virtual environment (podman-compose, the wheelhouse's pip)."""
    venv = cache / "tools"
    if not (venv / "bin" / "pip").exists():
        run([sys.executable, "-m", "venv", str(venv)], 120)
    return venv / "bin"


def podman_compose(cache: Path) -> list[str]:
    found = shutil.which("podman-compose")
    if found:
        return [found]
    exe = tools(cache) / "podman-compose"
    if not exe.exists():
        say(f"installing podman-compose (PyPI) into {exe.parent.parent}")
        run([str(exe.parent / "pip"), "install", "-q", "podman-compose>=1.1"], 300)
    return [str(exe)]


def podman_engine(cache: Path) -> Engine:
    missing = [p for p, exe in (("podman", "podman"), ("runc", "runc")) if not shutil.which(exe)]
    if missing:
        say(f"installing {' '.join(missing)} (apt)")
        apt_install(missing)
    engine = Engine("podman", podman_compose(cache), podman_settings(cache))
    os.environ.update(engine.env)
    if not succeeds(["podman", "info"], 60):
        raise Skip(
            "podman is installed but `podman info` fails: " + run(["podman", "info"], 60, check=False)[-300:]
        )
    return engine


def pick_engine(choice: str, cache: Path) -> Engine:
    if choice in ("auto", "docker"):
        found = docker_engine()
        if found:
            return found
        if choice == "docker":
            raise Skip("no Docker daemon answers `docker info`, or the compose plugin is missing")
    return podman_engine(cache)


def base_image(engine: Engine, given: str | None, cache: Path, mirror: str) -> str | None:
    """The BASE_IMAGE build arg: None for the Dockerfile's default (Docker pulls it)."""
    if given:
        return given
    if engine.name == "docker":
        return None
    if succeeds(["podman", "image", "exists", OFFICIAL_BASE]) or succeeds(
        ["podman", "pull", "-q", OFFICIAL_BASE], 300
    ):
        return OFFICIAL_BASE
    if succeeds(["podman", "image", "exists", DEBIAN_BASE]):
        return DEBIAN_BASE
    say(f"no registry answers for {OFFICIAL_BASE}: making {DEBIAN_BASE} with debootstrap from {mirror}")
    if not shutil.which("debootstrap"):
        apt_install(["debootstrap"])
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(root),
                mirror,
            ],
            900,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", "import", "-q", "-", DEBIAN_BASE], 300, stdin=tar.stdout)
        tar.wait(60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return DEBIAN_BASE


def wheelhouse(cache: Path) -> Path:
    """The image's Python dependencies as wheels, made by the host's pip (its mirrors and CA bundle),
    kept until pyproject.toml changes. inferswarm itself is built in the image from the sources."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    wheels = cache / f"wheels-{key}"
    if (wheels / ".complete").exists():
        return wheels
    for old in cache.glob("wheels-*"):
        shutil.rmtree(old, ignore_errors=True)
    say("building the wheelhouse for the image (host pip)")
    pip = tools(cache) / "pip"
    run([str(pip), "wheel", "-q", "-w", str(wheels), str(REPO), "setuptools>=68", "wheel"], 900)
    for built in wheels.glob("inferswarm-*.whl"):
        built.unlink()
    (wheels / ".complete").touch()
    return wheels


def build(engine: Engine, base: str | None, wheels: Path | None) -> None:
    cmd = engine("build", "-q", "-t", IMAGE, "-f", str(REPO / "Dockerfile"))
    if base:
        cmd += ["--build-arg", f"BASE_IMAGE={base}"]
    if wheels is not None:  # podman only: a build-time mount
        cmd += [
            "--build-arg",
            "PIP_FIND_LINKS=/wheels",
            "--build-arg",
            "PIP_NO_INDEX=1",
            "-v",
            f"{wheels}:/wheels:ro",
        ]
    started = time.monotonic()
    run([*cmd, str(REPO)], 1200)
    say(f"built {IMAGE} in {time.monotonic() - started:.0f} s" + (f" from {base}" if base else ""))


def prepare(args: argparse.Namespace) -> tuple[Engine, str | None, Path | None]:
    cache = cache_dir()
    engine = pick_engine(args.engine, cache)
    say(f"engine: {engine.name}, compose: {' '.join(Path(c).name for c in engine.compose)}")
    base = base_image(engine, args.base_image, cache, args.debian_mirror)
    wheels = wheelhouse(cache) if engine.name == "podman" else None
    return engine, base, wheels


# --- the stack -------------------------------------------------------------------------------------


def busy_ports() -> list[str]:
    busy = []
    for port, what in PORTS.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({what})")
    return busy


def wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def compose_env(args: argparse.Namespace, results: Path) -> dict[str, str]:
    load: dict[str, object] = {
        "shape": "stages",
        "stages": [{"duration_s": args.duration, "users": args.users}],
    }
    if args.no_wait:
        load["per_user_rps"] = None
    return {
        **os.environ,
        "UI": "--web" if args.web else "--headless",
        "WORKERS": str(args.workers),
        "CONFIG": args.config,
        "LOAD": json.dumps(load),
        "RESULTS_DIR": str(results),
        "BIND_HOST": "127.0.0.1",
        "TARGET_URL": "http://127.0.0.1:8000",
        "AGENTS": "http://127.0.0.1:9109",
        "MASTER_HOST": "127.0.0.1",
        "RUN_AS": run_as(),
    }


def run_as() -> str:
    """The containers' user: the caller's own, or an ordinary one where the caller is root, so the
    image is proven to work without root and the results' ownership is checked."""
    return f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "1000:1000"


def containers(engine: Engine) -> dict[str, str]:
    """This project's containers: name -> service."""
    out = run(
        engine(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Names}}"
        ),
        60,
        quiet=True,
    )
    names = out.split()
    services = {}
    for name in names:
        label = run(
            engine("inspect", "-f", '{{index .Config.Labels "com.docker.compose.service"}}', name),
            30,
            quiet=True,
        )
        services[name] = label.strip()
    return services


def wait_exit(engine: Engine, name: str, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = run(
            engine("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name), 30, quiet=True
        ).split()
        if state and state[0] in ("exited", "stopped", "dead"):
            return int(state[1])
        time.sleep(1)
    return None


def save_logs(engine: Engine, names: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.log").write_text(run(engine("logs", name), 60, check=False, quiet=True))


@contextmanager
def stack(engine: Engine, env: dict[str, str], logs: Path) -> Iterator[None]:
    """The compose project up for the body, then its logs saved and everything removed, whatever happens."""
    down = engine.compose_cmd("down", "-t", "30")
    run(down, 120, check=False, env=env)  # what an earlier, killed smoke left
    try:
        yield
    finally:
        try:
            save_logs(engine, containers(engine), logs)
        except Failed as exc:
            say(f"could not save the containers' logs: {exc}")
        run(down, 180, check=False, env=env)
        left = run(
            engine("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"), 60, check=False
        )
        if left.strip():
            run(engine("rm", "-f", *left.split()), 120, check=False)


def start(engine: Engine, env: dict[str, str], args: argparse.Namespace) -> str:
    """Target and agent first, healthy, then master and workers: podman before 4.6 cannot wait for a
    health check (compose's service_healthy), so the order is kept here. The master's container name."""
    run(engine.compose_cmd("up", "-d", "target", "agent"), 300, env=env)
    for url in ("http://127.0.0.1:8000/health", "http://127.0.0.1:9109/health"):
        if not wait_http(url, 60):
            raise Failed(f"{url} did not answer within 60 s")
    run(engine.compose_cmd("up", "-d", "--no-deps", "master", "worker"), 300, env=env)
    running = containers(engine)
    masters = [name for name, service in running.items() if service == "master"]
    workers = [name for name, service in running.items() if service == "worker"]
    if len(masters) != 1 or len(workers) != args.workers:
        raise Failed(f"expected 1 master and {args.workers} workers, the engine has {masters} and {workers}")
    say(f"stack up: target, agent, {masters[0]}, {len(workers)} worker(s)")
    return masters[0]


def press_start(workers: int) -> None:
    """What a user does in the web UI on :8089: wait for every worker to show, then Start (POST /swarm;
    the config's load shape sets the users, so the form's numbers are only what Locust requires)."""
    ui = "http://127.0.0.1:8089"
    if not wait_http(f"{ui}/", 90):
        raise Failed(f"the master's web UI at {ui} did not answer within 90 s")
    deadline = time.monotonic() + 90
    seen = 0
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{ui}/stats/requests", timeout=5) as response:
            seen = len(json.loads(response.read()).get("workers") or [])
        if seen >= workers:
            break
        time.sleep(1)
    else:
        raise Failed(f"the web UI showed {seen} of {workers} workers after 90 s")
    form = urllib.parse.urlencode({"user_count": 1, "spawn_rate": 1}).encode()
    request = urllib.request.Request(f"{ui}/swarm", data=form, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if not answer.get("success"):
        raise Failed(f"POST /swarm: {answer}")
    say(f"web UI: {workers} worker(s) connected, Start pressed")


# --- the check -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    problems: list[str]
    lines: list[str]
    rps: float | None = None


def check_run_dir(
    results: Path, workers: int, status: str = "completed", owner: int | None = None, headless: bool = True
) -> Outcome:
    """What a compose stress test must leave on the host's volume: one run directory, completed by the
    master with every worker joined, traffic without failures, telemetry from the agent, the target and
    every Locust node, and the report."""
    problems: list[str] = []
    lines: list[str] = []
    runs = (
        [p for p in results.iterdir() if p.is_dir() and (p / "run.json").exists()] if results.is_dir() else []
    )
    if len(runs) != 1:
        return Outcome([f"{results}: expected one run directory, found {len(runs)}"], lines)
    run_dir = runs[0]
    lines.append(f"run directory: {run_dir}")
    record = json.loads((run_dir / "run.json").read_text())
    if (record.get("mode"), record.get("status"), record.get("headless")) != ("master", status, headless):
        found = "/".join(str(record.get(key)) for key in ("mode", "status", "headless"))
        problems.append(f"run.json: mode/status/headless {found}, expected master/{status}/{headless}")
    joined = (record.get("workers") or {}).get("joined") or []
    if len(joined) != workers:
        problems.append(f"run.json: {len(joined)} worker(s) joined, expected {workers}")
    if record.get("target") != "http://127.0.0.1:8000":
        problems.append(f"run.json: target {record.get('target')!r}, not the loopback target")
    for name in ("report.html", "summary.md", "results.json", "locust_stats.csv", "locust_telemetry.csv"):
        if not (run_dir / name).is_file():
            problems.append(f"{name}: missing")
    if owner is not None:
        foreign = sorted(p.name for p in [run_dir, *run_dir.iterdir()] if p.stat().st_uid != owner)
        if foreign:
            problems.append(f"owned by another user than {owner} (RUN_AS): {foreign}")
    if problems:
        return Outcome(problems, lines)
    with (run_dir / "locust_stats.csv").open() as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    total = stats.get("Aggregated") or {}
    requests, failures = int(total.get("Request Count", 0)), int(total.get("Failure Count", 0))
    if requests == 0 or failures == requests:
        problems.append(f"locust_stats.csv: {requests} requests, {failures} failures")
    # The demo target answers 503 when its emulated GPU queue is full: an answer, and a fair result.
    # Anything else (refused connections, timeouts, bad bodies) means the stack is broken.
    with (run_dir / "locust_failures.csv").open() as f:
        errors: dict[str, int] = {}
        for row in csv.DictReader(f):  # one row per (request name, error)
            errors[row["Error"]] = errors.get(row["Error"], 0) + int(row["Occurrences"])
    broken = {error: n for error, n in errors.items() if not re.search(r"\bHTTP [45]\d\d\b", error)}
    if broken:
        problems.append(f"locust_failures.csv: failures that are not the target's answers: {broken}")
    per_worker = {w.get("node"): (w.get("requests"), w.get("failures")) for w in joined}
    if any(not n for n, _ in per_worker.values()):
        problems.append(f"run.json: a worker sent nothing: {per_worker}")
    lines.append(f"requests: {requests}, failures: {failures} {errors or ''}")
    lines.append(f"per worker (requests, failures): {per_worker}")
    with (run_dir / "locust_telemetry.csv").open() as f:
        telemetry = list(csv.DictReader(f))
    nodes = {row["node"] for row in telemetry}
    roles = sorted({node.split("@")[0] for node in nodes})
    worker_nodes = [node for node in nodes if node.startswith("worker@")]
    if len(worker_nodes) != workers or not {"master", "agent", "target"} <= set(roles):
        problems.append(
            f"locust_telemetry.csv: nodes {sorted(nodes)}; "
            f"expected the master, {workers} workers, the agent and the target"
        )
    lines.append(f"telemetry nodes: {', '.join(sorted(nodes))}")
    lines.append(f"CPU, median of the samples (100% = one core): {cpu_line(telemetry)}")
    summary = json.loads((run_dir / "results.json").read_text())
    steps = summary.get("steps") or []
    rps = steps[0].get("success_rps") if steps else None
    sent = steps[0].get("rps") if steps else None
    lines.append(f"requests/s in the measured window: {sent} answered, {rps} successful")
    return Outcome(problems, lines, rps)


def cpu_line(telemetry: list[dict[str, str]]) -> str:
    """Each Locust process's CPU and the host's (from the agent): what bounds the throughput."""
    series: dict[str, list[float]] = {}
    for row in telemetry:
        if row["metric"] == "process_cpu_pct" and row["node"].startswith(("worker@", "master@")):
            series.setdefault(row["node"].split("@")[0] + " " + row["node"].split("/", 1)[-1], []).append(
                float(row["value"])
            )
        elif row["metric"] == "cpu_util_pct" and row["node"].startswith("agent@") and row["device"] == "host":
            series.setdefault("host (all cores)", []).append(float(row["value"]))
    return ", ".join(f"{name} {statistics.median(values):.0f}%" for name, values in sorted(series.items()))


# --- main ------------------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compose-smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["prepare", "run"], default="run")
    parser.add_argument("--engine", choices=["auto", "docker", "podman"], default="auto")
    parser.add_argument("--workers", type=int, default=2, help="worker containers (default 2)")
    parser.add_argument("--users", type=int, default=4, help="users in the one stage (default 4)")
    parser.add_argument("--duration", type=int, default=10, help="the stage's seconds (default 10)")
    parser.add_argument("--no-wait", action="store_true", help="users send back to back (per_user_rps off)")
    parser.add_argument("--config", default="configs/demo.yaml", help="a run config under configs/")
    parser.add_argument(
        "--results", type=Path, help="where the run directory goes (default: a new temporary folder)"
    )
    parser.add_argument(
        "--base-image", help="the image's base (default: python:3.11-slim, else a Debian one)"
    )
    parser.add_argument("--debian-mirror", default="http://deb.debian.org/debian")
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="S",
        help="`compose stop master` S seconds after it starts: its report must still be written",
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="the compose file's default mode: the master's web UI, started through it as a user would "
        "press Start, then stopped (--stop-after, default 15)",
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds the master may run (default 300)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.users < 1 or args.duration < 1:
        parser.error("--workers, --users and --duration must be at least 1")
    if args.web and not args.stop_after:
        args.stop_after = 15  # a web-mode master runs until it is stopped
    return args


def on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        engine, base, wheels = prepare(args)
        if args.action == "prepare":
            say("prepared")
            return 0
        if busy := busy_ports():
            say(f"ports in use on 127.0.0.1: {', '.join(busy)}; stop what holds them")
            return 2
        build(engine, base, wheels)
        results = (args.results or Path(tempfile.mkdtemp(prefix="compose-smoke-"))).resolve()
        results.mkdir(parents=True, exist_ok=True)
        env = compose_env(args, results)
        uid, gid = (int(part) for part in env["RUN_AS"].split(":"))
        if os.getuid() == 0:
            os.chown(results, uid, gid)
        started = time.monotonic()
        with stack(engine, env, results / "compose-logs"):
            master = start(engine, env, args)
            if args.web:
                press_start(args.workers)
            if args.stop_after:
                # `compose stop master`: SIGTERM, then the file's stop_grace_period (60 s) before SIGKILL.
                time.sleep(args.stop_after)
                say(f"compose stop master, {args.stop_after} s into its run")
                stopping = time.monotonic()
                run(engine.compose_cmd("stop", "master"), 180, env=env)
                say(f"the master stopped {time.monotonic() - stopping:.1f} s after SIGTERM")
            code = wait_exit(engine, master, args.timeout)
            if code is None:
                raise Failed(f"the master was still running after {args.timeout} s")
            if code != 0:
                raise Failed(f"the master exited {code} (logs: {results / 'compose-logs'})")
            for name, service in containers(engine).items():
                if service == "worker" and (worker_code := wait_exit(engine, name, 60)) != 0:
                    raise Failed(f"{name} exited {worker_code} after the master ended (expected 0)")
        status = "interrupted" if args.stop_after else "completed"
        outcome = check_run_dir(results, args.workers, status, uid, headless=not args.web)
        for line in outcome.lines:
            say(line)
        if outcome.problems:
            for problem in outcome.problems:
                say(f"FAIL {problem}")
            say(f"containers' logs: {results / 'compose-logs'}")
            return 1
        say(f"PASS: {args.workers} worker container(s), up to down in {time.monotonic() - started:.0f} s")
        return 0
    except Skip as exc:
        say(f"SKIP: {exc}")
        return EXIT_SKIP
    except Failed as exc:
        say(f"FAIL: {exc}")
        return 1
    except KeyboardInterrupt as exc:
        say(f"stopped ({exc or 'SIGINT'}); the stack was taken down")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
