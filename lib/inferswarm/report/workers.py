"""The workers of a distributed run, from run.json: who joined, who was refused, who was lost or left.

A lost worker (SIGKILL, crash, network) takes with it the requests it finished after its last stats
report to the master (Locust's workers report every 3 s), so the report states when it went silent.
"""

from __future__ import annotations

from typing import Any


def workers_section(run: dict[str, Any]) -> dict[str, Any] | None:
    """results.json `workers`: counts and the losses; None for a run without workers."""
    data = run.get("workers")
    if not isinstance(data, dict):
        return None
    joined = [w for w in data.get("joined") or [] if isinstance(w, dict)]
    gone = [{**w, "how": how} for how in ("lost", "left") for w in data.get(how) or [] if isinstance(w, dict)]
    return {
        "joined": len(joined),
        "nodes": [w.get("node") for w in joined],
        "refused": [
            {"node": w.get("node"), "problems": w.get("problems") or []}
            for w in data.get("refused") or []
            if isinstance(w, dict)
        ],
        "lost": sorted(gone, key=lambda w: w.get("last_seen_epoch_s") or 0),
        "report_interval_s": data.get("report_interval_s") or 3.0,
    }


def worker_lines(section: dict[str, Any]) -> list[str]:
    """summary.md lines for the workers section."""
    lines = [f"{section['joined']} worker(s) joined: {', '.join(str(n) for n in section['nodes']) or '-'}."]
    for w in section["lost"]:
        when = (
            f"{w['t_s']:.1f} s into the test" if isinstance(w.get("t_s"), int | float) else "before the test"
        )
        users = f" with {w['users']} users" if w.get("users") is not None else ""
        if w["how"] == "lost":
            lines.append(
                f"**Lost** {w['node']} (index {w.get('index')}){users}, {when} (last heartbeat "
                f"{w.get('last_seen_at')}, noticed {w.get('detected_at')}): the requests it completed in its "
                f"last {section['report_interval_s']:g} s or so never reached the master; the others took "
                "over its users."
            )
        else:
            lines.append(
                f"**Left** {w['node']} (index {w.get('index')}){users}, {when}: it quit during the run."
            )
    for w in section["refused"]:
        lines.append(f"Refused {w['node']}: {'; '.join(w['problems'])}.")
    return lines
