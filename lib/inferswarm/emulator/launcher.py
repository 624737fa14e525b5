"""Start the reference target as a child process on a free loopback port (demos, tests, benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inferswarm.lifeline import die_with_parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


class ReferenceTarget:
    """The reference target as a child process on a free loopback port, for demos and tests."""

    def __init__(
        self,
        settings_file: Path | None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`extra_args` go to `inferswarm serve` (e.g. `--orch-webhook-url URL`); `env` is added to this
        process's environment for the child (e.g. the leaderboard's secret)."""
        self.settings_file = settings_file
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReferenceTarget:
        cmd = [
            sys.executable,
            "-m",
            "inferswarm.cli",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if self.settings_file is not None:
            cmd += ["--config", str(self.settings_file)]
        cmd += self.extra_args
        env = None if self.env is None else {**os.environ, **self.env}
        # Its own session (a Ctrl+C meant for the run does not hit it), but it dies with its parent.
        self.proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent(), env=env)
        if not wait_for_http(f"{self.url}/health", 30, self.proc):
            self.stop()
            raise RuntimeError(f"reference target did not become healthy on {self.url}")
        return self

    def stats(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
                data = json.load(response)
                return data if isinstance(data, dict) else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *_: object) -> None:
        self.stop()
