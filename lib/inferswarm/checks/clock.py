"""Clock offset to each agent: telemetry from the target machine is put on the generator's timeline by
its timestamps, so a clock that is off misaligns GPU samples with the load that caused them.

offset = agent time - midpoint of the request (sent, received); the true offset lies within
offset +/- round trip / 2. WARN beyond `clock_warn_ms` (50), FAIL beyond `clock_fail_ms` (1000).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferswarm.checks.agents import agent_answer
from inferswarm.checks.context import CheckContext
from inferswarm.checks.model import Check, Status, details_json

WHY = "telemetry timelines would be misaligned with the load (sync the clocks, e.g. with chrony/NTP)"


@dataclass(frozen=True)
class Offset:
    offset_ms: float
    bound_ms: float
    round_trip_ms: float


def clock_offset(sent_epoch_s: float, agent_epoch_s: float, received_epoch_s: float) -> Offset:
    """The agent's clock minus ours, assuming it read its clock halfway through the round trip."""
    round_trip = received_epoch_s - sent_epoch_s
    midpoint = sent_epoch_s + round_trip / 2
    return Offset((agent_epoch_s - midpoint) * 1000.0, round_trip * 500.0, round_trip * 1000.0)


def judge_offset(offset: Offset, warn_ms: float, fail_ms: float) -> tuple[Status, str | None]:
    size = abs(offset.offset_ms)
    if size > fail_ms:
        return Status.FAIL, f"clock off by more than {fail_ms:g} ms: {WHY}"
    if size > warn_ms:
        return Status.WARN, f"clock off by more than {warn_ms:g} ms: {WHY}"
    if offset.bound_ms > warn_ms:
        return Status.WARN, f"round trip too long to bound the offset within {warn_ms:g} ms"
    return Status.PASS, None


def check_clock(ctx: CheckContext, name: str, url: str) -> Check:
    check_name = f"clock_offset:{name}"
    got = agent_answer(ctx, name, url)
    if got.answer is None:
        status = Status.WARN
        return Check(check_name, status, ctx.scrub(f"agent {url}: {got.error}"), 0.0)
    agent_time = got.answer.get("time_epoch_s")
    if not isinstance(agent_time, int | float) or isinstance(agent_time, bool):
        return Check(check_name, Status.WARN, f"agent {url}: no time_epoch_s in its /checks answer")
    offset = clock_offset(got.sent_epoch_s, float(agent_time), got.received_epoch_s)
    status, why = judge_offset(offset, ctx.checks.clock_warn_ms, ctx.checks.clock_fail_ms)
    facts: dict[str, object] = {
        "agent": url,
        "offset_ms": round(offset.offset_ms, 3),
        "bound_ms": round(offset.bound_ms, 3),
        "round_trip_ms": round(offset.round_trip_ms, 3),
    }
    if why:
        facts["why" if status is Status.FAIL else "warning"] = why
    return Check(check_name, status, ctx.scrub(details_json(facts)), offset.round_trip_ms)


def run_clock(ctx: CheckContext) -> list[Check]:
    if not ctx.agents:
        return [Check("clock_offset", Status.SKIP, "no inferswarm agent to compare clocks with")]
    return [check_clock(ctx, name, url) for name, url in ctx.agents]
