"""Reports: a run directory's CSVs, stages and telemetry → analysis, SLO verdicts, figures, documents.

Runs in its own process and never imports Locust: `load` reads (`telemetry` the big long-form CSV),
`analysis` computes (per capability, per step, saturation, gates) into `results.Results`, the typed and
versioned contract of results.json; `figures` draws with plotly, `render` writes report.html, PNGs,
results.json and summary.md; `compare` puts two runs side by side.
"""
