"""tally on Citus beside single-node tally, in one run (`make bench-citus`).

Three databases, each freshly migrated: single-node tally (the plain
cluster, `make db`), tally distributed on the Citus cluster with one worker
registered, and with two. Against each, interleaved (so that the three see
about the same load on a shared machine):

1. single increments, each its own transaction (pgbench, 16 clients):
   tally.increment_counter over 100,000 keys, and on one hot key; through
   the coordinator on Citus (the call is delegated to the key's worker);
   beside it the floor of a write, one delta row by a plain
   INSERT ... VALUES into tally.delta (no function);
2. batches: tally.increment_counters of 1,000 (2 clients);
3. fold rates: CALL tally.compact() on a prepared backlog, live (timestamps
   in the last minute, 10,000 keys) and a backfill (a year, 20,000 keys),
   the rollup partitions made beforehand; and the time of a CALL with one
   delta pending (the fixed cost of fold steps: on Citus, two-phase commit
   on every worker).

Per case and node, the CPU time the node's processes used (the postmaster's
tree, read from /proc: every node runs on this machine): CPU per delegated
increment on the coordinator and on the workers, deltas folded per worker
CPU second. These are what the model in docs/scale-out.md needs. Every case
checks that the totals equal what was committed.

Writes citus.json and citus.txt (default: bench/results/).

Usage: python bench/citus.py --plain DSN --citus1 DSN --citus2 DSN [--seconds 10]
[--clients 16] [--live 300000] [--backfill 200000] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.report import RESULTS, say
from bench.runners import PgBench, wait_timed

BATCH = 1_000
HZ = os.sysconf("SC_CLK_TCK")


# -- CPU time of a node: its postmaster's process tree ------------------------------------
def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def node_cpu(postmaster: int) -> float:
    """CPU seconds used so far by a PostgreSQL node: the postmaster, its
    children that exited (cutime/cstime: the postmaster reaps them) and its
    children alive now (read first: one reaped meanwhile is counted twice,
    never lost)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            c = _stat(int(entry))
            if int(c[1]) == postmaster:
                total += int(c[11]) + int(c[12])
    total += sum(int(v) for v in _stat(postmaster)[11:15])
    return total / HZ


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / HZ, sum(ticks) / HZ


def postmaster_of(dsn: str) -> int:
    """The postmaster of the node of ``dsn`` (the parent of a backend, read
    while the backend is alive); the node must run on this machine."""
    with psycopg.connect(dsn, autocommit=True) as c:
        backend = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            return int(_stat(backend)[1])
        except OSError:
            raise SystemExit(f"bench/citus.py: the server of {dsn!r} does not run on this machine") from None


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
        self.machine = round((busy1[0] - self.busy0[0]) / max(busy1[1] - self.busy0[1], 1e-9), 3)

    def per(self, units: int, scale: float = 1e6) -> dict[str, float]:
        """CPU per unit (µs by default) on each node."""
        return {n: round(v * scale / max(units, 1), 1) for n, v in self.cpu.items()}


# -- helpers ---------------------------------------------------------------------------------
def drop_counter(conn: psycopg.Connection, name: str) -> None:
    """tally.drop_counter; on Citus over one connection per worker (it deletes
    from distributed tables, then from the reference table counters)."""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
            conn.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
        conn.execute("SELECT tally.drop_counter(%s)", (name,))


def fresh_counter(conn: psycopg.Connection, name: str) -> int:
    if conn.execute("SELECT 1 FROM tally.counters WHERE name = %s", (name,)).fetchone():
        drop_counter(conn, name)
    conn.execute("SELECT tally.create_counter(%s)", (name,))
    return conn.execute("SELECT id FROM tally.counters WHERE name = %s", (name,)).fetchone()[0]


def stored(conn: psycopg.Connection, counter: str) -> int:
    """Fold everything, then the counter's sum of totals."""
    conn.execute("CALL tally.compact()")
    return int(
        conn.execute(
            "SELECT coalesce(sum(t.value), 0) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = %s",
            (counter,),
        ).fetchone()[0]
    )


def load(conn: psycopg.Connection, counter: str, n: int, keys: int, spread: str) -> float:
    """n increments of 1 over `keys` keys, timestamps over the last `spread`,
    through increment_counters (100,000 per call, arrays built in the
    server); returns increments/s."""
    step = 100_000
    t0 = time.monotonic()
    done = 0
    while done < n:
        k = min(step, n - done)
        conn.execute(
            "SELECT tally.increment_counters(array_fill(%(c)s::text, ARRAY[%(k)s::integer]),"
            " (SELECT array_agg((1 + floor(random() * %(keys)s::integer))::text)"
            "  FROM generate_series(1, %(k)s::integer)),"
            " array_fill(1::bigint, ARRAY[%(k)s::integer]),"
            " (SELECT array_agg(now() - random() * %(spread)s::interval) FROM generate_series(1, %(k)s::integer)))",
            {"c": counter, "k": k, "keys": keys, "spread": spread},
        )
        done += k
    return n / (time.monotonic() - t0)


# -- 1, 2: ingest ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ingest:
    key: str
    label: str
    script: str  # one pgbench transaction; {counter} and {id} filled in
    per_tx: int  # increments per transaction
    clients: int | None = None  # default: --clients


INGEST = (
    Ingest(
        "many_keys",
        "increment_counter, 100,000 keys",
        "\\set k random(1, 100000)\nSELECT tally.increment_counter('{counter}', :k::text);\n",
        1,
    ),
    Ingest("hot_key", "increment_counter, one hot key", "SELECT tally.increment_counter('{counter}', 'hot');\n", 1),
    Ingest(
        "raw_insert",
        "one delta row, INSERT .. VALUES (floor)",
        "\\set k random(1, 100000)\nINSERT INTO tally.delta (shard, counter_id, key, delta, at)"
        " VALUES (0, {id}, :k::text, 1, now());\n",
        1,
    ),
    Ingest(
        "batch",
        f"increment_counters, {BATCH:,} per call",
        "SELECT tally.increment_counters('{{"
        + ",".join(["{counter}"] * BATCH)
        + "}}'::text[], '{{"
        + ",".join(f"k{i}" for i in range(1, BATCH + 1))
        + "}}'::text[], '{{"
        + ",".join(["1"] * BATCH)
        + "}}'::bigint[]);\n",
        BATCH,
        clients=2,
    ),
)


def run_ingest(t: Target, pg: PgBench, case: Ingest, clients: int, seconds: int) -> dict:
    counter = f"cb_{case.key}"
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        cid = fresh_counter(conn, counter)
        conn.execute("CALL tally.compact()")
        script = case.script.format(counter=counter, id=cid)
        n = case.clients or clients
        proc = pg.start(f"{t.key}_{case.key}", script, n, seconds)
        with Measure(t) as m:
            wait_timed(proc, seconds, f"{t.label}: {case.label}")
            tps, done = pg.result(proc)
            # The clients' backends (and on Citus their connections to the
            # workers) end now: read the CPU once they are gone and counted
            # in their postmaster's cutime, not while it reaps them.
            time.sleep(1.5)
        increments = done * case.per_tx
        got = stored(conn, counter)
        drop_counter(conn, counter)
    r = {
        "case": case.key,
        "label": case.label,
        "clients": n,
        "increments_per_s": round(tps * case.per_tx),
        "increments": increments,
        "stored": got,
        "exact": got == increments,
        "cpu_s": m.cpu,
        "cpu_us_per_increment": m.per(increments),
        "machine_busy": m.machine,
    }
    cpu = _nodes(r["cpu_us_per_increment"])
    say(
        f"  {t.label:<26} {case.label:<40} {r['increments_per_s']:>9,}/s  CPU µs/increment: {cpu}"
        f"  machine {m.machine:.0%}  {'exact' if r['exact'] else 'NOT EXACT'}"
    )
    return r


# -- 3: folds --------------------------------------------------------------------------------
FOLDS = (("live", "live (last minute)", "1 minute", 10_000), ("backfill", "backfill (a year)", "365 days", 20_000))


def warm_up(t: Target) -> None:
    """The rollup partitions a year of buckets needs, made before any measured fold."""
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, "cb_warmup")
        load(conn, "cb_warmup", 5_000, 1_000, "366 days")
        conn.execute("CALL tally.compact()")
        drop_counter(conn, "cb_warmup")


def run_fold(t: Target, case: tuple[str, str, str, int], n: int) -> dict:
    key, label, spread, keys = case
    counter = f"cb_fold_{key}"
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, counter)
        conn.execute("CALL tally.compact()")
        insert_rate = load(conn, counter, n, keys, spread)
        conn.execute("CHECKPOINT")
        flips0 = conn.execute("SELECT flips FROM tally.write_gen").fetchone()[0]
        with Measure(t) as m:
            conn.execute("CALL tally.compact()")
        flips1 = conn.execute("SELECT flips FROM tally.write_gen").fetchone()[0]
        got = stored(conn, counter)
        drop_counter(conn, counter)
    workers_cpu = sum(v for k, v in m.cpu.items() if k.startswith("worker")) or m.cpu.get("node", 0)
    r = {
        "case": key,
        "label": label,
        "deltas": n,
        "keys": keys,
        "seconds": round(m.seconds, 2),
        "deltas_per_s": round(n / m.seconds),
        "flips": flips1 - flips0,
        "load_per_s": round(insert_rate),
        "cpu_s": m.cpu,
        "deltas_per_worker_cpu_s": round(n / workers_cpu) if workers_cpu else None,
        "machine_busy": m.machine,
        "exact": got == n,
    }
    say(
        f"  {t.label:<26} fold {label:<20} {n:>8,} deltas in {m.seconds:6.2f} s = {r['deltas_per_s']:>8,}/s"
        f"  CPU s: {_nodes(m.cpu)}"
        f"  ({r['deltas_per_worker_cpu_s'] or 0:,} per worker CPU s; loaded at {insert_rate:,.0f}/s)"
        f"  {'exact' if r['exact'] else 'NOT EXACT'}"
    )
    return r


def run_step_cost(t: Target, calls: int = 15) -> dict:
    """CALL tally.compact() with one delta pending: wall ms per call and steps per call."""
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, "cb_step")
        conn.execute("CALL tally.compact()")
        times, steps = [], []
        for i in range(calls):
            conn.execute("SELECT tally.increment_counter('cb_step', %s)", (f"k{i}",))
            f0 = conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0]
            t0 = time.perf_counter()
            conn.execute("CALL tally.compact()")
            times.append((time.perf_counter() - t0) * 1000)
            steps.append(conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0] - f0)
        ok = stored(conn, "cb_step") == calls
        drop_counter(conn, "cb_step")
    r = {"calls": calls, "ms_p50": round(statistics.median(times), 1), "ms_max": round(max(times), 1), "exact": ok}
    r["fold_runs_per_call"] = round(statistics.mean(steps), 2)
    say(f"  {t.label:<26} CALL tally.compact() with one delta pending: {r['ms_p50']:.1f} ms (median of {calls})")
    return r


# -- the run ------------------------------------------------------------------------------------
def _each(targets: list[Target], fn: Callable[[Target], dict]) -> dict[str, dict]:
    return {t.key: fn(t) for t in targets}


def ratios(res: dict) -> dict:
    def r(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    out: dict = {}
    for case, rows in res["ingest"].items():
        s = rows["single"]["increments_per_s"]
        out[f"{case}: citus2 / single"] = r(rows["citus2"]["increments_per_s"], s)
        out[f"{case}: citus1 / single"] = r(rows["citus1"]["increments_per_s"], s)
    for case, rows in res["fold"].items():
        out[f"fold {case}: citus2 / citus1"] = r(rows["citus2"]["deltas_per_s"], rows["citus1"]["deltas_per_s"])
        out[f"fold {case}: citus1 / single"] = r(rows["citus1"]["deltas_per_s"], rows["single"]["deltas_per_s"])
        out[f"fold {case}: citus2 / single"] = r(rows["citus2"]["deltas_per_s"], rows["single"]["deltas_per_s"])
    return out


SHORT = {"node": "n", "coordinator": "c", "worker1": "w1", "worker2": "w2"}


def _nodes(values: dict[str, float]) -> str:
    return " ".join(f"{SHORT.get(n, n)}={v:g}" for n, v in values.items())


def table(res: dict) -> list[str]:
    labels = {t["key"]: t["label"] for t in res["targets"]}
    keys = list(labels)
    lines = [
        f"tally on Citus {res['environment']['citus']} beside single-node tally, {res['environment']['when']}",
        f"{res['environment']['cores']} cores shared by every node, the clients and other work on the machine"
        f" (load average at start {', '.join(f'{x:.1f}' for x in res['environment']['load_average_at_start'])}):",
        "figures are one run on a shared, loaded machine, not a scaling measurement.",
        "",
        f"{'increments/s (pgbench, each its own transaction)':<50}" + "".join(f"{labels[k]:>22}" for k in keys),
    ]
    for rows in res["ingest"].values():
        lines.append(
            f"{rows[keys[0]]['label'] + ' (' + str(rows[keys[0]]['clients']) + ' clients)':<50}"
            + "".join(f"{rows[k]['increments_per_s']:>22,}" for k in keys)
        )
    lines += ["", "CPU µs per increment, per node"]
    for rows in res["ingest"].values():
        cells = [_nodes(rows[k]["cpu_us_per_increment"]) for k in keys]
        lines.append(f"  {rows[keys[0]]['label']:<48}" + "".join(f"{c:>22}" for c in cells))
    lines += ["", f"{'fold, deltas/s (CALL tally.compact())':<50}" + "".join(f"{labels[k]:>22}" for k in keys)]
    for rows in res["fold"].values():
        first = rows[keys[0]]
        title = f"{first['label']} ({first['deltas']:,} over {first['keys']:,} keys)"
        lines.append(f"{title:<50}" + "".join(f"{rows[k]['deltas_per_s']:>22,}" for k in keys))
        lines.append(
            f"{'  per worker CPU second':<50}"
            + "".join(f"{rows[k]['deltas_per_worker_cpu_s'] or 0:>22,}" for k in keys)
        )
        lines.append(f"{'  CPU s per node':<50}" + "".join(f"{_nodes(rows[k]['cpu_s']):>22}" for k in keys))
    lines.append(
        f"{'CALL compact(), one delta pending, ms (median)':<50}"
        + "".join(f"{res['step_cost'][k]['ms_p50']:>22}" for k in keys)
    )
    lines += ["", "ratios"] + [f"  {k:<44} {v}" for k, v in res["ratios"].items()]
    lines.append(f"\nevery case exact (stored = committed): {'yes' if res['exact'] else 'NO'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/citus.py", description="tally on Citus vs single node (make bench-citus)")
    ap.add_argument("--plain", required=True, help="single-node tally, a fresh migrated database")
    ap.add_argument("--citus1", required=True, help="the Citus coordinator of a database with one worker")
    ap.add_argument("--citus2", required=True, help="the Citus coordinator of a database with two workers")
    ap.add_argument("--seconds", type=int, default=10, help="each pgbench case (default 10)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--live", type=int, default=300_000, help="deltas of the live backlog")
    ap.add_argument("--backfill", type=int, default=200_000, help="deltas of the backfill backlog")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    targets = [
        Target("single", "single node", args.plain),
        Target("citus1", "Citus, 1 worker", args.citus1, citus_workers(args.citus1)),
        Target("citus2", "Citus, 2 workers", args.citus2, citus_workers(args.citus2)),
    ]
    if len(targets[1].workers) != 1 or len(targets[2].workers) != 2:
        ap.error("--citus1 needs a database with one worker, --citus2 one with two (scripts/citus.sh fresh-db NAME W)")
    with psycopg.connect(args.citus2, autocommit=True) as c:
        citus = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()[0]
        shards = c.execute(
            "SELECT shard_count FROM citus_tables WHERE table_name = 'tally.delta'::regclass"
        ).fetchone()[0]
    res: dict = {
        "environment": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "citus": citus,
            "shard_count": shards,
            "seconds": args.seconds,
            "clients": args.clients,
        },
        "targets": [{"key": t.key, "label": t.label, "nodes": list(t.pids)} for t in targets],
    }
    say(f"tally bench-citus: Citus {citus}, {shards} shards, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    pgs = {t.key: PgBench(t.dsn) for t in targets}
    try:
        res["ingest"] = {}
        for case in INGEST:
            say(f"\n{case.label}")
            res["ingest"][case.key] = {}
            for t in targets:
                res["ingest"][case.key][t.key] = run_ingest(t, pgs[t.key], case, args.clients, args.seconds)
    finally:
        for pg in pgs.values():
            pg.close()
    say("\nfolds (the rollup partitions made first)")
    for t in targets:
        warm_up(t)
    res["fold"] = {}
    for case in FOLDS:
        n = args.live if case[0] == "live" else args.backfill
        res["fold"][case[0]] = _each(targets, lambda t, case=case, n=n: run_fold(t, case, n))
    res["step_cost"] = _each(targets, run_step_cost)
    res["ratios"] = ratios(res)
    res["exact"] = all(r["exact"] for rows in (*res["ingest"].values(), *res["fold"].values()) for r in rows.values())
    res["exact"] = res["exact"] and all(r["exact"] for r in res["step_cost"].values())
    res["seconds"] = round(time.monotonic() - t_start)
    lines = table(res)
    say("")
    for line in lines:
        say(line)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "citus.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "citus.txt").write_text("# make bench-citus\n" + "\n".join(lines) + "\n")
    say(f"\nwritten {args.out / 'citus.json'} and citus.txt ({res['seconds']} s)")
    if not res["exact"]:
        print("tally bench-citus: a case stored a different count than it committed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
