"""Per-pipeline figures for results.json: what a request means for each kind of AI work.

- image and video pipelines: outputs per second and seconds per output (`outputs_per_request` from run.json);
- audio-to-text: the real-time factor, seconds of audio per second of processing;
- LLMs: time to first token and inter-token latency percentiles, tokens per second and output tokens,
  from the derived statistics (see `inferswarm.derived`), and where the token counts came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from inferswarm.derived import ITL, OK, OUTPUT_TOKENS, TOKENS_PER_S, TTFT, split_entry
from inferswarm.report.load import JsonObject, RunData, object_of
from inferswarm.report.results import CapabilitySummary, Distribution, PipelineFigures

PERCENTILE_COLUMNS = {"p50": "50%", "p90": "90%", "p95": "95%", "p99": "99%"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fact(facts: JsonObject, key: str) -> float | None:
    """A number run.json gives about a capability (None when it gives none, or something else)."""
    value = facts.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _derived_rows(data: RunData) -> dict[str, dict[str, dict[str, Any]]]:
    """capability -> metric -> that derived entry's stats row (LLM timings and tokens: a capability's
    `:ok` entry, the latency of its successful requests, is in the summary, not a pipeline figure)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if data.stats is None:
        return out
    for _, row in data.stats.iterrows():
        split = split_entry(str(row["Name"]))
        if split is not None and split[1] != OK:
            out.setdefault(split[0], {})[split[1]] = dict(row)
    return out


def _distribution(row: dict[str, Any]) -> Distribution:
    return Distribution(
        avg=_number(row.get("Average Response Time")),
        **{key: _number(row.get(column)) for key, column in PERCENTILE_COLUMNS.items()},
    )


def pipeline_figures(data: RunData, summary: Mapping[str, CapabilitySummary]) -> dict[str, PipelineFigures]:
    """Per capability with requests: its pipeline's figures (a capability run.json describes in a way
    this report does not understand is left out, with a note)."""
    info = object_of(data.run.get("capabilities_info"))
    derived = _derived_rows(data)
    out: dict[str, PipelineFigures] = {}
    for name in sorted(set(info) | set(derived)):
        facts = object_of(info.get(name))
        row = summary.get(name)
        if row is None or not row.requests:
            continue
        entry: dict[str, Any] = {k: facts[k] for k in ("kind", "pipeline", "model") if k in facts}
        mean_s = (_number(row.avg_ms) or 0.0) / 1000.0
        entry["mean_latency_s"] = mean_s
        per_request = _fact(facts, "outputs_per_request")
        if per_request:
            entry["outputs_per_request"] = per_request
            entry["output_unit"] = facts.get("output_unit", "image")
            entry["outputs_per_s"] = (row.success_rps or 0.0) * per_request
            entry["s_per_output"] = mean_s / per_request if mean_s else None
        audio_s = _fact(facts, "audio_s")
        if audio_s:
            entry["audio_s"] = audio_s
            entry["real_time_factor"] = audio_s / mean_s if mean_s else None
        metrics = derived.get(name, {})
        if TTFT in metrics:
            entry["ttft_ms"] = _distribution(metrics[TTFT])
        if ITL in metrics:
            entry["itl_ms"] = _distribution(metrics[ITL])
        if TOKENS_PER_S in metrics:
            entry["tokens_per_s"] = _distribution(metrics[TOKENS_PER_S])
            kind = str(metrics[TOKENS_PER_S].get("Type", ""))
            entry["token_source"] = kind.removeprefix("tokens(").removesuffix(")") or None
        if OUTPUT_TOKENS in metrics:
            entry["output_tokens_avg"] = _number(metrics[OUTPUT_TOKENS].get("Average Response Time"))
        try:
            out[name] = PipelineFigures.model_validate(entry)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            data.notes.append(f"run.json capabilities_info {name}: not understood, left out ({problem})")
    return out
