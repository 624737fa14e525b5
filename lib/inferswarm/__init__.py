"""inferswarm: Locust-based load testing for GPU inference services.

The public API is small on purpose; everything else is reachable through the `inferswarm` CLI.
"""

from inferswarm.config import ConfigError, RunConfig, load_config

__version__ = "0.1.0"

__all__ = ["ConfigError", "RunConfig", "__version__", "load_config"]
