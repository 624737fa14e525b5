"""Only `inferswarm.locust` (and the locustfile under `inferswarm.entry`) may import Locust or gevent:
the config, the load kinds, the protocols, the report, telemetry and the emulator must work without them
(Locust monkey-patches the whole process on import)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import inferswarm
from tests.conftest import REPO

ADAPTERS = ("inferswarm.locust", "inferswarm.entry")

# Imports each module named on the command line in a fresh interpreter, in order, and reports the first
# one after which Locust or gevent is loaded.
PROBE = """
import importlib, json, sys
culprit = None
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded = sorted(m for m in ("locust", "gevent") if m in sys.modules)
    if loaded:
        culprit = [name, loaded]
        break
print(json.dumps(culprit))
"""


def modules() -> list[str]:
    found = [m.name for m in pkgutil.walk_packages(inferswarm.__path__, "inferswarm.")]
    # `__main__` modules run the command line when imported
    return [name for name in found if not name.startswith(ADAPTERS) and not name.endswith(".__main__")]


def first_to_load_locust(names: list[str]) -> list[object] | None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *names], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: list[object] | None = json.loads(proc.stdout)
    return result


def test_nothing_outside_the_adapter_imports_locust_or_gevent() -> None:
    names = modules()
    # the walk really found the package (so an empty list cannot pass)
    expected = {
        "inferswarm.cli.run",
        "inferswarm.cli.parser",
        "inferswarm.config.schema",
        "inferswarm.load.cycle",
        "inferswarm.protocols.livepeer",
        "inferswarm.report.render",
        "inferswarm.rundir",
        "inferswarm.telemetry.sampling",
        "inferswarm.emulator.app",
    }
    assert expected <= set(names), expected - set(names)
    assert first_to_load_locust(names) is None


def test_the_probe_sees_an_import_of_locust() -> None:
    assert first_to_load_locust(["inferswarm.rundir", "inferswarm.locust.outcome"]) == [
        "inferswarm.locust.outcome",
        ["gevent", "locust"],
    ]


def test_no_target_folder_is_left_in_the_package() -> None:
    """`inferswarm.target` became `inferswarm.emulator`; a stale folder (e.g. only __pycache__) would
    still import as a namespace package."""
    package = REPO / "lib" / "inferswarm"
    assert not [p for p in package.rglob("target") if p.is_dir()]
    assert (package / "emulator" / "echo.py").is_file()
