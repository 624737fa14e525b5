"""The reference target: a small service that behaves like a GPU inference server, on loopback."""
