"""The baseline for bench/user_overhead.py: a bare Locust FastHttpUser on its plainest fast path.

One task, no wait, no response checks (`catch_response=False`): POST the same JSON body with the same
headers as the inferswarm capability it is compared with. bench/user_overhead.py sets the path and the
body through BENCH_PATH and BENCH_BODY; the defaults let it run alone too:

    .venv/bin/locust -f bench/bare_fasthttp_locustfile.py --headless -u 16 -r 16 -t 8s --host URL
"""

from __future__ import annotations

import os
from typing import Any

from locust import FastHttpUser, constant, task

PATH = os.environ.get("BENCH_PATH", "/infer")
# Sent as bytes, as the capability user sends its prepared body (Locust's hints say str or dict only).
BODY: Any = os.environ.get("BENCH_BODY", '{"prompt":"x"}').encode()
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class BareFastHttpUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self) -> None:
        self.client.post(PATH, data=BODY, headers=HEADERS, catch_response=False)
