"""Load test of `makemore serve`: the server in a subprocess on a free loopback port, this process the client.

    python benchmarks/serve_load.py [--out runs/names] [--requests 1000] [--concurrency 8]

Without --out it first trains a small mlp on the bundled names into a temporary folder. The requests cycle through
three kinds a page makes: /api/next (the bar chart, for a prefix of a real name), /api/sample (n=10) and
/api/graph (a micrograd drawing, which runs Graphviz's dot). Each of the client's threads keeps one HTTP/1.1
connection open, as a browser does. Prints requests per second, p50/p99 latency overall and per kind, errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GRAPH = json.dumps({"expr": "n = x1*w1 + x2*w2 + b; o = tanh(n)",
                    "values": {"x1": 2, "x2": 0, "w1": -3, "w2": 1, "b": 6.8813735870195432}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_small(folder: Path) -> str:
    out = folder / "names"
    subprocess.run([sys.executable, "-m", "makemore", "train", "--model", "mlp", "--steps", "3000", "--quiet",
                    "--samples", "0", "--out", str(out)], check=True)
    return str(out)


def start_server(out: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "makemore", "serve", "--out", out, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/info")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("the server did not start in 120 s")


def requests(n: int, seed: int = 0) -> list[tuple[str, str, str, bytes | None]]:
    """(kind, method, path, body) for n requests, the three kinds in turn."""
    from makemore.data import load_corpus

    rng = random.Random(seed)
    names = load_corpus("names").items("all")
    out = []
    for i in range(n):
        kind = ("next", "sample", "graph")[i % 3]
        if kind == "next":
            name = rng.choice(names)
            prefix = urllib.parse.quote(name[: rng.randrange(len(name) + 1)])
            out.append((kind, "GET", f"/api/next?prefix={prefix}", None))
        elif kind == "sample":
            out.append((kind, "GET", f"/api/sample?n=10&seed={i}&temperature=0.8", None))
        else:
            out.append((kind, "POST", "/api/graph", GRAPH))
    return out


def fire(port: int, work: list[tuple[str, str, str, bytes | None]], concurrency: int) -> tuple[list, float]:
    """Run `work` from `concurrency` threads, each with its own keep-alive connection; (results, seconds)."""
    local = threading.local()

    def one(item: tuple[str, str, str, bytes | None]) -> tuple[str, float, str | None]:
        kind, method, path, body = item
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"} if body else {}
        t = time.perf_counter()
        try:
            local.conn.request(method, path, body=body, headers=headers)
            response = local.conn.getresponse()
            data = response.read()
            error = None if response.status == 200 else f"{response.status} {data[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            local.conn.close()
            del local.conn
            error = repr(e)
        return kind, time.perf_counter() - t, error

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, work))
    return results, time.perf_counter() - start


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="checkpoint directory (default: train a small mlp first)")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or train_small(Path(tmp))
        port = free_port()
        server = start_server(out, port)
        try:
            fire(port, requests(24, seed=1), args.concurrency)  # warm-up: threads, connections, first dot run
            results, seconds = fire(port, requests(args.requests), args.concurrency)
        finally:
            server.terminate()
            server.wait(10)
    errors = [e for _, _, e in results if e]
    report = {"requests": len(results), "concurrency": args.concurrency, "seconds": round(seconds, 3),
              "req_per_s": round(len(results) / seconds, 1), "errors": len(errors)}
    rows = [("all", [t for _, t, _ in results])]
    rows += [(k, [t for kind, t, _ in results if kind == k]) for k in ("next", "sample", "graph")]
    print(f"{len(results)} requests, {args.concurrency} at a time, in {seconds:.2f} s: "
          f"{report['req_per_s']} req/s, {len(errors)} errors")
    print("| requests | n | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|")
    for name, ts in rows:
        ms = {"p50": percentile(ts, 50) * 1e3, "p99": percentile(ts, 99) * 1e3, "mean": statistics.mean(ts) * 1e3}
        report[name] = {k: round(v, 1) for k, v in ms.items()}
        print(f"| {name} | {len(ts)} | {ms['p50']:.1f} | {ms['p99']:.1f} | {ms['mean']:.1f} |")
    print(f"machine: {platform.processor() or platform.machine()}, {len(__import__('os').sched_getaffinity(0))} "
          f"cores, Python {platform.python_version()}")
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
