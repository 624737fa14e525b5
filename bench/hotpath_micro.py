"""What the capability user adds per request on top of a bare FastHttpUser, without the network.

bench/user_overhead.py measures whole Locust processes against nginx, where a few microseconds per request
drown in the machine's noise. Here the network is replaced by a canned nginx answer (the same bytes
nginx sends the benchmark: 200, `Content-Length: 11`, `{"ok":true}`), parsed by geventhttpclient's own
response class, so what is timed is everything above the socket: geventhttpclient's request building and
parsing, Locust's session, the request event and its listeners (Locust's statistics; inferswarm's status
code counter), and inferswarm's client. Variants take turns in batches (`--batch` calls each, `--repeats`
turns); the minimum and the median batch are reported in microseconds per request.

- `bare`: bench/bare_fasthttp_locustfile.py's task (`client.post(..., catch_response=False)`);
- `capability`: the capability user's `send` (lib/inferswarm/locust/client.py), kind `json`, body checked;
- `alt:NAME`: the same with the client class from `--alt-client PATH` (a changed copy of client.py;
  repeatable; NAME is the file's name without `.py`);
- `wait bare`, `wait capability`: each user's `wait_time()` (the pacer of the capability user);
- with `--request-log`, `capability+log` and `alt:NAME+log` too: the same with the request log on (a run's
  default), its rows written as the owner writes them (one Arrow record batch per `--batch` calls,
  timed with them; a run writes one a second).

    .venv/bin/python bench/hotpath_micro.py [--alt-client /tmp/client.py] [--batch 2000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (gevent monkey-patching first, as in a real Locust process)
from geventhttpclient.header import Headers
from geventhttpclient.response import HTTPSocketPoolResponse
from locust.contrib.fasthttp import LocustUserAgent
from locust.env import Environment

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from hotpath_ab import alt_user_class, bare_class, config_for  # noqa: E402

from inferswarm.locust.listeners.request_log import RequestLog  # noqa: E402
from inferswarm.locust.listeners.status_codes import StatusCodes  # noqa: E402
from inferswarm.locust.user import CapabilityUser, build_user_classes  # noqa: E402

HOST = "http://127.0.0.1:9"
ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 18:38:53 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n"
    b'{"ok":true}'
)


class CannedSocket:
    """Answers every recv with the canned response (one request, one answer)."""

    def recv(self, size: int) -> bytes:
        return ANSWER

    def close(self) -> None:
        return None


class CannedPool:
    def return_socket(self, sock: Any) -> None:
        return None

    def release_socket(self, sock: Any) -> None:
        return None


def canned_urlopen(self: LocustUserAgent, request: Any) -> Any:
    """LocustUserAgent._urlopen without the connection: geventhttpclient parses the canned answer."""
    response = HTTPSocketPoolResponse(
        CannedSocket(), CannedPool(), block_size=4096, method=request.method, headers_type=Headers
    )
    return self.response_type(response, request=request, sent_request=b"")


def per_call_us(fn: Callable[[], object], batch: int, after: Callable[[], object] | None) -> float:
    started = time.perf_counter()
    for _ in range(batch):
        fn()
    if after is not None:
        after()
    return 1e6 * (time.perf_counter() - started) / batch


def capability_user(user_class: type[CapabilityUser], log_path: Path | None) -> tuple[Any, RequestLog | None]:
    """A capability user in its own environment, with the status code counter and, given a path, the
    request log, as a run has them."""
    env = Environment(user_classes=[user_class], host=HOST)
    env.create_local_runner()
    StatusCodes(env)
    log = RequestLog(env, log_path) if log_path is not None else None
    user = user_class(env)
    user.on_start()
    assert user.send(), f"{user_class}: the canned answer must count as a success"
    return user, log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--alt-client", type=Path, action="append", default=[])
    parser.add_argument(
        "--request-log", action="store_true", help="also each capability variant with the log"
    )
    args = parser.parse_args()
    LocustUserAgent._urlopen = canned_urlopen  # type: ignore[method-assign]

    bare_cls = bare_class()
    bare_cls.host = HOST
    bare_env = Environment(user_classes=[bare_cls], host=HOST)
    bare_env.create_local_runner()
    bare = bare_cls(bare_env)

    config = config_for(HOST)
    (cap_cls,) = build_user_classes(config, {})
    classes: dict[str, type[CapabilityUser]] = {"capability": cap_cls}
    for path in args.alt_client:
        classes[f"alt:{path.stem}"] = alt_user_class(cap_cls, path)

    tmp = Path(tempfile.mkdtemp(prefix="hotpath-micro-"))
    calls: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {"bare": (bare.post, None)}
    waits: dict[str, Callable[[], object]] = {"wait bare": bare.wait_time}
    for name, user_class in classes.items():
        user, _ = capability_user(user_class, None)
        calls[name] = (user.send, None)
        waits.setdefault("wait capability", user.wait_time)
        if args.request_log:
            logged, log = capability_user(user_class, tmp / f"{name.replace(':', '-')}.arrows")
            assert log is not None
            calls[f"{name}+log"] = (logged.send, log.flush)
    calls.update({name: (fn, None) for name, fn in waits.items()})
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, (fn, after) in calls.items():
            timings[name].append(per_call_us(fn, args.batch, after))
    print(f"{args.repeats} turns of {args.batch} calls each")
    width = max(len(name) for name in calls) + 1
    print(f"{'':<{width}} {'min us':>7} {'median us':>9}  min - bare")
    base = min(timings["bare"])
    for name, values in timings.items():
        extra = f"  {min(values) - base:+.2f} us" if not name.startswith(("bare", "wait")) else ""
        print(f"{name:<{width}} {min(values):7.2f} {statistics.median(values):9.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
