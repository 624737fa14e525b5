"""The telemetry in Locust's web UI: a "Telemetry" tab (latest value of every series, through Locust's
extended-tab hooks) and a live chart page of GPU/CPU/memory against users and RPS.

Routes (on Locust's Flask app):
  /inferswarm/telemetry          the chart page
  /inferswarm/telemetry.json     latest rows, chart series and load since `?since=<epoch s>`
  /inferswarm/telemetry.csv      the run's telemetry CSV so far
  /inferswarm/plotly.min.js      the chart library, from the installed plotly package (no CDN)
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inferswarm.locust.listeners.telemetry import TelemetryHub

TAB_KEY = "inferswarm-telemetry"
CHART_METRICS = (
    "gpu_util_pct",
    "gpu_mem_used_bytes",
    "gpu_mem_total_bytes",
    "gpu_power_w",
    "cpu_util_pct",
    "mem_util_pct",
    "process_cpu_pct",
)
_STATIC = Path(__file__).with_name("static")


def plotly_js_path() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def telemetry_json(hub: TelemetryHub, since: float) -> dict[str, Any]:
    load = [row for row in hub.load if row[0] > since]
    # per-core CPU would drown the charts; the table has it
    series = [s for s in hub.live.series(CHART_METRICS, since) if not s["device"].startswith("cpu")]
    return {
        "now": max([row[0] for row in hub.load] or [since]),
        "interval_s": hub.interval_s,
        "nodes": hub.live.nodes(),
        "latest": hub.live.rows(),
        "series": series,
        "load": {
            "t": [row[0] for row in load],
            "users": [row[1] for row in load],
            "rps": [round(row[2], 2) for row in load],
            "fail_rps": [round(row[3], 2) for row in load],
        },
        "saturation": hub.saturation.summary(),
    }


def install(web_ui: Any, hub: TelemetryHub) -> None:
    from flask import Response, request, send_file

    app = web_ui.app
    web_ui.template_args["extended_tabs"] = [{"title": "Telemetry", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "node", "title": "Node"},
                {"key": "source", "title": "Source"},
                {"key": "device", "title": "Device"},
                {"key": "metric", "title": "Metric"},
                {"key": "value", "title": "Value"},
                {"key": "unit", "title": "Unit"},
                {"key": "age_s", "title": "Age (s)"},
            ],
        }
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "/inferswarm/telemetry.csv", "title": "Download telemetry CSV (long form)"},
        {
            "href": "/inferswarm/telemetry",
            "title": "Live telemetry charts (GPU, CPU, memory vs users and RPS)",
        },
    ]

    @app.after_request  # type: ignore[untyped-decorator]
    def add_telemetry_rows(response: Any) -> Any:
        if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
            return response
        data = response.get_json()
        data["extended_stats"] = [{"key": TAB_KEY, "data": hub.live.rows()[:2000]}]
        response.set_data(json.dumps(data))
        return response

    def page() -> Any:
        return send_file(_STATIC / "telemetry.html", mimetype="text/html")

    def data() -> Any:
        try:
            since = float(request.args.get("since", "0"))
        except ValueError:
            since = 0.0
        return Response(json.dumps(telemetry_json(hub, since)), mimetype="application/json")

    def csv_file() -> Any:
        hub.csv.flush()
        return send_file(
            hub.csv.path, mimetype="text/csv", as_attachment=True, download_name=hub.csv.path.name
        )

    def plotly_js() -> Any:
        return send_file(plotly_js_path(), mimetype="application/javascript", max_age=3600)

    for rule, view in (
        ("/inferswarm/telemetry", page),
        ("/inferswarm/telemetry.json", data),
        ("/inferswarm/telemetry.csv", csv_file),
        ("/inferswarm/plotly.min.js", plotly_js),
    ):
        app.add_url_rule(rule, endpoint=rule, view_func=web_ui.auth_required_if_enabled(view))
