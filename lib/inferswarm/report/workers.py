"""The workers of a distributed run, from run.json: who joined, who was refused, who was lost or left.

A lost worker (SIGKILL, crash, network) takes with it the requests it finished after its last stats
report to the master (Locust's workers report every 3 s), so the report states when it went silent.
"""

from __future__ import annotations

from pydantic import JsonValue, ValidationError

from inferswarm.report.load import JsonObject, RunData
from inferswarm.report.results import GoneWorker, Workers

# what run.json records of a lost or departed worker (anything else there is not reported)
_GONE_KEYS = [name for name in GoneWorker.model_fields if name != "how"]


def _objects(value: JsonValue) -> list[JsonObject]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _last_seen(worker: JsonObject) -> float:
    when = worker.get("last_seen_epoch_s")
    return when if isinstance(when, int | float) and when else 0


def workers_section(data: RunData) -> Workers | None:
    """results.json `workers`: counts and the losses; None for a run without workers (or with a workers
    record this report does not understand, noted)."""
    section = data.run.get("workers")
    if not isinstance(section, dict):
        return None
    joined = _objects(section.get("joined"))
    gone: list[JsonObject] = [
        {**{key: w[key] for key in _GONE_KEYS if key in w}, "how": how}
        for how in ("lost", "left")
        for w in _objects(section.get(how))
    ]
    try:
        return Workers.model_validate(
            {
                "joined": len(joined),
                "nodes": [w.get("node") for w in joined],
                "refused": [
                    {"node": w.get("node"), "problems": w.get("problems") or []}
                    for w in _objects(section.get("refused"))
                ],
                "lost": sorted(gone, key=_last_seen),
                "report_interval_s": section.get("report_interval_s") or 3.0,
            }
        )
    except ValidationError as exc:
        data.notes.append(f"run.json workers: not understood, left out ({exc.errors()[0]['msg']})")
        return None


def worker_lines(section: Workers) -> list[str]:
    """summary.md lines for the workers section."""
    lines = [f"{section.joined} worker(s) joined: {', '.join(str(n) for n in section.nodes) or '-'}."]
    interval = section.report_interval_s or 3.0
    for w in section.lost:
        when = f"{w.t_s:.1f} s into the test" if w.t_s is not None else "before the test"
        users = f" with {w.users} users" if w.users is not None else ""
        if w.how == "lost":
            lines.append(
                f"**Lost** {w.node} (index {w.index}){users}, {when} (last heartbeat "
                f"{w.last_seen_at}, noticed {w.detected_at}): the requests it completed in its "
                f"last {interval:g} s or so never reached the master; the others took "
                "over its users."
            )
        else:
            lines.append(f"**Left** {w.node} (index {w.index}){users}, {when}: it quit during the run.")
    for r in section.refused:
        lines.append(f"Refused {r.node}: {'; '.join(r.problems)}.")
    return lines
