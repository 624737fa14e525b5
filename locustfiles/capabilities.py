"""Run the capabilities of an inferswarm config with plain Locust.

    locust -f locustfiles/capabilities.py --inferswarm-config configs/demo.yaml \
        --csv results/manual/locust --csv-full-history

The config path can also come from the INFERSWARM_CONFIG environment variable. Each capability becomes a
user class named after it (pick them in the web UI or list them after the options); the config's load
profile is the shape.
"""

from inferswarm.locust.plugin import bootstrap

bootstrap(globals())
