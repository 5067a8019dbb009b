"""The databases under test, their nodes, and the wall time and CPU per
node of what runs against them (every node runs on this machine)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.runners import busy_share, machine_busy, node_cpu, parent_pid


def postmaster_of(dsn: str) -> int:
    """The postmaster of the node of ``dsn`` (the parent of a backend, read
    while the backend is alive); the node must run on this machine."""
    with psycopg.connect(dsn, autocommit=True) as c:
        backend = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            return parent_pid(backend)
        except OSError:
            raise SystemExit(f"bench.citus: the server of {dsn!r} does not run on this machine") from None


def citus_workers(dsn: str) -> list[str]:
    """DSNs of the active workers of a Citus database (same user and database)."""
    p = conninfo_to_dict(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND isactive ORDER BY nodeport"
        ).fetchall()
    return [
        make_conninfo(host=h, port=str(port), user=p.get("user", "postgres"), dbname=p["dbname"]) for h, port in rows
    ]


@dataclass
class Target:
    """One database under test: its coordinator (or only node) and workers."""

    key: str
    label: str
    dsn: str
    workers: list[str] = field(default_factory=list)  # worker DSNs (same database)
    pids: dict[str, int] = field(default_factory=dict)  # node name -> postmaster pid

    def __post_init__(self) -> None:
        self.pids["coordinator" if self.workers else "node"] = postmaster_of(self.dsn)
        for i, w in enumerate(self.workers, 1):
            self.pids[f"worker{i}"] = postmaster_of(w)

    def cpu(self) -> dict[str, float]:
        return {n: node_cpu(p) for n, p in self.pids.items()}


class Measure:
    """Wall time and CPU per node of what runs inside the ``with`` block."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def __enter__(self) -> Measure:
        self.cpu0, self.busy0 = self.target.cpu(), machine_busy()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.t0
        cpu1, busy1 = self.target.cpu(), machine_busy()
        self.cpu = {n: round(cpu1[n] - self.cpu0[n], 2) for n in cpu1}
        self.machine = round(busy_share(self.busy0, busy1), 3)

    def per(self, units: int, scale: float = 1e6) -> dict[str, float]:
        """CPU per unit (µs by default) on each node."""
        return {n: round(v * scale / max(units, 1), 1) for n, v in self.cpu.items()}
