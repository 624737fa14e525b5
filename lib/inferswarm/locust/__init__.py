"""The Locust adapter: the only package that imports `locust` or `gevent`.

`plugin.bootstrap()` (called by a locustfile) builds the user and shape classes from a run config and
registers the plugin; everything that needs the running environment is wired in Locust's `init` event
by `plugin.Plugin`: on a worker the worker root (it sends), elsewhere the owner root (it owns the run
directory). Users are thin shells over `client.CapabilityClient`, which runs the request flows and
fires `events.request`; listeners in `listeners/` subscribe themselves and keep their own state.
"""
