"""`inferswarm` command line: run, demo, report, compare, serve, agent, validate.

Exit codes: 0 success, 2 bad input (config, arguments), 3 an SLO gate failed (or compare found a
regression), otherwise Locust's own exit code.
"""

from inferswarm.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
