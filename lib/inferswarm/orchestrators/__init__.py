"""The Livepeer orchestrator matrix (`inferswarm orchestrators`): seed 002's AI job tester.

discovery (which orchestrators serve which pipelines and models), webhook (pins the gateway to one
orchestrator), jobs (one test job, built and judged by the `livepeer` kind), leaderboard (signed stats),
tester (one run into one run directory), schedule (`--every CRON`). See docs/orchestrators.md.
"""
