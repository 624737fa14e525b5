"""Locust entry points shipped inside the package, so `inferswarm run` works from any install."""

from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
