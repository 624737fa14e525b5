"""Samples stay plain Python values, survive Locust's msgpack wire and reject malformed rows."""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import socket
import subprocess
import sys
from decimal import Decimal

import msgpack
import pytest

from inferswarm.telemetry import samples
from inferswarm.telemetry.samples import METRIC_UNITS, Sample, from_wire, plain, sample, to_wire


class NumpyLike:
    def __init__(self, value: float) -> None:
        self._value = value

    def item(self) -> float:
        return self._value


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        (ctypes.c_uint(7), 7, int),
        (ctypes.c_ulonglong(2**40), 2**40, int),
        (ctypes.c_double(1.5), 1.5, float),
        (NumpyLike(2.25), 2.25, float),
        (Decimal("3.5"), 3.5, float),
        (True, 1, int),
        (12.0, 12.0, float),
    ],
)
def test_plain(raw: object, expected: float, kind: type) -> None:
    value = plain(raw)
    assert value == expected and type(value) is kind


def test_wire_round_trip_through_msgpack() -> None:
    batch = [
        sample(1700000000.1234, "worker@h/1", "nvml", "gpu0", "gpu_power_w", ctypes.c_uint(250)),
        sample(1700000000.1234, "worker@h/1", "host", "host", "load_1m", 0.75),
    ]
    assert batch[0].timestamp == 1700000000.123 and batch[0].unit == METRIC_UNITS["gpu_power_w"]
    decoded = msgpack.unpackb(msgpack.packb({"samples": to_wire(batch)}))
    assert from_wire(decoded["samples"]) == batch


def test_malformed_rows_are_dropped() -> None:
    good = [1.0, "n", "host", "host", "load_1m", 1.0, "load"]
    rows = [
        good,
        good[:6],
        ["x", *good[1:]],
        [*good[:5], "high", "load"],
        [*good[:5], math.nan, "load"],
        [*good[:5], True, "load"],
        "not a row",
    ]
    assert from_wire(rows) == [Sample(*good)]  # type: ignore[arg-type]
    assert from_wire({"not": "a list"}) == []


def test_a_worker_outside_the_initial_pid_namespace_names_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h")
    monkeypatch.setattr(os, "getpid", lambda: 8)
    monkeypatch.setattr(samples, "pid_namespace", lambda: samples.INITIAL_PID_NAMESPACE)
    assert samples.node_name("worker") == "worker@h/8"
    monkeypatch.setattr(samples, "pid_namespace", lambda: None)  # no /proc
    assert samples.node_name("worker") == "worker@h/8"
    monkeypatch.setattr(samples, "pid_namespace", lambda: 4026532301)
    assert samples.node_name("worker") == "worker@h/8-4026532301"
    assert samples.node_name("master") == "master@h" and samples.node_name("agent") == "agent@h"


def test_two_workers_with_one_pid_in_two_containers_get_two_names() -> None:
    # What two compose workers on the host's network are: one hostname, PID 1 each, two PID namespaces,
    # alive at once (the kernel reuses a namespace's inode number once it is gone, as it reuses PIDs).
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not installed")
    code = (
        "import os, sys; from inferswarm.telemetry import samples; "
        "print(os.getpid(), samples.node_name('worker'), flush=True); sys.stdin.read()"
    )
    command = [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", code]
    procs = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        lines = [proc.stdout.readline().split() for proc in procs if proc.stdout is not None]
    finally:
        outputs = [proc.communicate(input="", timeout=60) for proc in procs]
    if any(
        proc.returncode != 0 and "Operation not permitted" in err
        for proc, (_, err) in zip(procs, outputs, strict=True)
    ):
        pytest.skip("new PID namespaces are not permitted here (unshare needs CAP_SYS_ADMIN)")
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    (pid_a, name_a), (pid_b, name_b) = lines
    assert pid_a == pid_b == "1"
    assert name_a.startswith(f"worker@{socket.gethostname()}/1-") and name_a != name_b
