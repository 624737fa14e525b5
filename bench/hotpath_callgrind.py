"""Instructions per request of the capability user and of a bare FastHttpUser, counted by callgrind.

bench/user_overhead.py and bench/hotpath_ab.py time real processes, which a busy machine (other work on
two cores) moves by tens of percent from run to run; bench/hotpath_micro.py times the hot path alone, by
the clock too. Here each variant runs bench/hotpath_micro.py's calls (the canned nginx answer, parsed by
geventhttpclient: no network) under `valgrind --tool=callgrind`, which counts the instructions executed
(Ir). Other work on the machine moves that count by a few percent at most (some of Locust's statistics
work is per wall-clock second, and a busy machine makes a valgrind run take more seconds). Each variant
runs twice, `--warmup` calls and `--warmup + --calls` calls, and the difference over `--calls` is its Ir
per request: start-up, imports and warm-up cancel out.

Variants (`--variants`, default `bare,capability,capability+log`): as in bench/hotpath_micro.py (`+log`:
with the request log, its rows written as one Arrow record batch per 2,000 calls). `--locust-cookie-jar`
gives the capability users Locust's own cookie jar back (`http.cookiejar.CookieJar`, as the bare user
has), to show what the client's `LeanCookieJar` saves. `--compare DIR` runs every capability variant
from another checkout's lib/ too (`VARIANT @NAME`).

    .venv/bin/python bench/hotpath_callgrind.py [--calls 2000] [--compare /tmp/before]

Needs valgrind (`apt-get install valgrind`). A run takes about a minute per variant.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FLUSH_EVERY = 2000
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child(variant: str, calls: int, locust_jar: bool) -> None:
    """Run `calls` requests of one variant in this process (under callgrind)."""
    sys.path.insert(0, str(BENCH))
    from http.cookiejar import CookieJar

    import hotpath_micro as micro
    from hotpath_ab import bare_class, config_for
    from locust.contrib.fasthttp import LocustUserAgent
    from locust.env import Environment

    from inferswarm.locust.user import build_user_classes

    LocustUserAgent._urlopen = micro.canned_urlopen  # type: ignore[method-assign]
    flush = None
    if variant == "bare":
        user_class = bare_class()
        user_class.host = micro.HOST
        env = Environment(user_classes=[user_class], host=micro.HOST)
        env.create_local_runner()
        send = user_class(env).post
    else:
        (capability,) = build_user_classes(config_for(micro.HOST), {})
        log_path = Path(tempfile.mkdtemp(prefix="hotpath-callgrind-")) / "requests.arrows"
        user, log = micro.capability_user(capability, log_path if variant.endswith("+log") else None)
        if locust_jar:
            jar = CookieJar()
            user.client.cookiejar = user.client.client.cookiejar = jar
        send = user.send
        flush = log.flush if log is not None else None
    for n in range(1, calls + 1):
        send()
        if flush is not None and n % FLUSH_EVERY == 0:
            flush()
    if flush is not None:
        flush()


def instructions(variant: str, calls: int, lib: Path, locust_jar: bool, out_dir: Path) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(lib), str(REPO), env.get("PYTHONPATH", "")) if p)
    out = out_dir / f"callgrind.{os.getpid()}.{calls}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__]
    cmd += ["--child", variant, "--calls", str(calls)] + (["--locust-cookie-jar"] if locust_jar else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{variant}: valgrind exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="bare,capability,capability+log")
    parser.add_argument("--calls", type=int, default=2000, help="requests counted per variant")
    parser.add_argument("--warmup", type=int, default=1000, help="requests both runs of a variant make")
    jar_help = "give the capability users Locust's CookieJar"
    parser.add_argument("--locust-cookie-jar", action="store_true", help=jar_help)
    compare_help = "also run the capability variants from DIR's lib/"
    parser.add_argument("--compare", type=Path, metavar="DIR", help=compare_help)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls, args.locust_cookie_jar)
        return 0
    if shutil.which("valgrind") is None:
        print("hotpath_callgrind: valgrind is not installed (apt-get install valgrind); nothing measured")
        return 2
    runs = [(v, REPO / "lib", "") for v in args.variants.split(",")]
    if args.compare is not None:
        tree = args.compare.resolve()
        if not (tree / "lib" / "inferswarm").is_dir():
            parser.error(f"--compare {args.compare}: no lib/inferswarm there")
        runs += [(v, tree / "lib", f" @{tree.name}") for v, _, _ in runs if v != "bare"]
    jar = " (Locust's cookie jar)" if args.locust_cookie_jar else ""
    print(f"Ir per request: ({args.warmup + args.calls} calls - {args.warmup} calls) / {args.calls}{jar}")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hotpath-callgrind-") as tmp:
        for variant, lib, suffix in runs:
            calls = [args.warmup, args.warmup + args.calls]
            low, high = (instructions(variant, n, lib, args.locust_cookie_jar, Path(tmp)) for n in calls)
            name = variant + suffix
            results[name] = (high - low) / args.calls
            print(f"  {name:<28} {results[name]:10,.0f} Ir/request", flush=True)
    if "bare" in results:
        for name, value in results.items():
            if name != "bare":
                print(f"{name} / bare: {value / results['bare']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
