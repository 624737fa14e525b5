"""The Locust process's heap at init is frozen out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import weakref

from inferswarm.locust.plugin import freeze_heap


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_heap_collects_then_freezes() -> None:
    garbage = weakref.ref(Cycle())  # garbage in a cycle: collected first, never frozen for good
    gc.unfreeze()
    try:
        freeze_heap()
        assert garbage() is None
        assert gc.get_freeze_count() > 1000
        assert len(gc.get_objects(generation=2)) < gc.get_freeze_count() // 10
    finally:
        gc.unfreeze()
