"""The owner's side of a `search` load: judge each trial when it ends, choose the next one.

Attached to the shape as its planner: when the planned trials are over, the shape closes the last one
(the per-step statistics then hold its measured window), and this judges it on the config's SLO gates
(`inferswarm.trials`) and asks the load kind for the next level. The trials and the bracket so far are
kept in run.json (`search`) after every trial, so a run stopped early still says what it found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from inferswarm import derived
from inferswarm.load import LoadContext, SearchLoad, Stage, Trial, bracket
from inferswarm.load.search import bracket_text
from inferswarm.locust.listeners.step_stats import StepStats
from inferswarm.slo import parse_gate
from inferswarm.trials import Verdict, judge, window_metrics

log = logging.getLogger("inferswarm")
JUDGED_ON = {
    derived.OK: "latency of successful requests",
    derived.FROM_INTENDED: "latency of successful requests from their intended start",
}


class SearchDriver:
    def __init__(
        self,
        load: SearchLoad,
        context: LoadContext,
        step_stats: StepStats,
        save: Callable[[dict[str, Any]], None],
        latency_entry: str = derived.OK,
    ) -> None:
        self.load = load
        self.gates = [parse_gate(text) for text in context.gates]
        self.capabilities = context.capabilities
        self.step_stats = step_stats
        self.save = save
        self.latency_entry = latency_entry
        self.trials: list[Trial] = []
        self.records: list[dict[str, Any]] = []
        self._level = load.low
        self.done = False

    def reset(self) -> None:
        self.trials, self.records, self._level, self.done = [], [], self.load.low, False

    def next_stage(self, index: int, start_s: float) -> Stage | None:
        self._judge_last(index - 1)
        level = self.load.next_level(self.trials)
        if level is None:
            self.done = True
            self.save(self.summary())
            low, high = bracket(self.trials)
            capacity = bracket_text(low, high, self.load.unit)
            log.warning("search: done after %d trials: capacity %s", len(self.trials), capacity)
            return None
        self._level = level
        return self.load.trial_stage(index, start_s, level)

    def _judge_last(self, stage: int) -> None:
        window = self.step_stats.last_window
        if window is None:
            verdict, requests = Verdict(False, ("nothing measured (the trial ended in its warm-up)",)), 0
        else:
            entries, seconds = window
            scopes = window_metrics(entries, seconds, self.capabilities, self.latency_entry)
            verdict = judge(self.gates, scopes)
            requests = int(scopes["total"]["requests"] or 0)
        self.trials.append(Trial(self._level, verdict.passed))
        self.records.append(
            {
                "stage": stage,
                "level": self._level,
                "passed": verdict.passed,
                "requests": requests,
                "why": list(verdict.reasons),
            }
        )
        unit = "rps" if self.load.over == "rps" else "users"  # short: one line per trial
        outcome = "pass" if verdict.passed else "fail (" + "; ".join(verdict.reasons) + ")"
        log.warning("search: trial %d at %g %s: %s", len(self.trials), self._level, unit, outcome)
        self.save(self.summary())

    def summary(self) -> dict[str, Any]:
        low, high = bracket(self.trials)
        return {
            "over": self.load.over,
            "resolution": self.load.resolution,
            "judged_on": JUDGED_ON.get(self.latency_entry, self.latency_entry),
            "trials": self.records,
            "highest_passing": low,
            "lowest_failing": high,
            "done": self.done,
        }
