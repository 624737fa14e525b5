from __future__ import annotations

import asyncio

import pytest

from inferswarm.emulator.gpu import CapacityExceeded, SimulatedGpu


def test_slots_then_queue_then_rejection() -> None:
    async def scenario() -> tuple[list[str], dict[str, float | int]]:
        gpu = SimulatedGpu(slots=2, queue_depth=1)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def job() -> None:
            try:
                async with gpu.slot():
                    await release.wait()
                outcomes.append("done")
            except CapacityExceeded:
                outcomes.append("rejected")

        tasks = [asyncio.create_task(job()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert (gpu.running, gpu.in_system) == (2, 3)  # two running, one waiting
        release.set()
        await asyncio.gather(*tasks)
        return outcomes, gpu.snapshot()

    outcomes, snap = asyncio.run(scenario())
    assert sorted(outcomes) == ["done", "done", "done", "rejected", "rejected"]
    assert (snap["admitted"], snap["rejected"], snap["completed"], snap["peak_in_system"]) == (3, 2, 3, 3)
    assert (snap["running"], snap["waiting"]) == (0, 0)


def test_slot_is_released_on_error() -> None:
    async def scenario() -> int:
        gpu = SimulatedGpu(slots=1, queue_depth=0)
        with pytest.raises(RuntimeError):
            async with gpu.slot():
                raise RuntimeError("boom")
        async with gpu.slot():  # would raise CapacityExceeded if the slot leaked
            pass
        return gpu.in_system

    assert asyncio.run(scenario()) == 0
