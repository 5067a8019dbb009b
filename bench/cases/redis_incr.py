"""Redis INCR on one key beside the single increments: redis-benchmark
against a throwaway redis-server on loopback, with no persistence, then
appendonly with appendfsync everysec."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from tally.progress import Progress

from bench.plan import Plan
from bench.runners import redis_benchmark, redis_cli, redis_installed, redis_server

CASES = (
    ("redis_incr", "Redis INCR (no persistence)", False),
    ("redis_incr_aof", "Redis INCR (appendfsync everysec)", True),
)


def measure(key: str, label: str, plan: Plan, aof: bool) -> dict:
    """INCR on one key through redis-benchmark against a throwaway redis-server."""
    if not redis_installed():
        return {"case": key, "label": label, "skipped": "redis-server not installed"}
    with redis_server(aof) as port:
        # calibrate, then size the measured run to last about redis_seconds
        rate = redis_benchmark(port, plan.clients, 20_000)
        requests = max(20_000, int(rate * plan.redis_seconds))
        result: list[float] = []
        t = threading.Thread(target=lambda: result.append(redis_benchmark(port, plan.clients, requests)))
        t.start()
        with Progress(requests / rate, label) as bar:
            while t.is_alive():
                bar.update(time.monotonic() - bar.started)
                time.sleep(0.1)
        t.join()
        if not result:
            raise RuntimeError("redis-benchmark failed")
        stored = int(redis_cli(port, "GET", "counter:__rand_int__"))
    return {
        "case": key,
        "label": label,
        "tps": round(result[0]),
        "requests": requests,
        "stored": stored,
        "exact": stored == 20_000 + requests,
        "clients": plan.clients,
        "appendonly": "everysec" if aof else "no",
    }


def run(plan: Plan) -> Iterator[dict]:
    for key, label, aof in CASES:
        yield measure(key, label, plan, aof)
