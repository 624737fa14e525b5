"""Every capability of an inferswarm run config as a Locust user class, plus the config's load shape.

locust -f <this file> --inferswarm-config configs/demo.yaml   (or INFERSWARM_CONFIG=...)
"""

from inferswarm.locust.plugin import bootstrap

bootstrap(globals())
