"""How long and how big each part of `make bench` is (the full run and
``--quick``), and the names the bench makes in the database under test."""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = "tally_bench_tables"  # the baselines' own tables, dropped at the end
BATCH = 1_000  # increments per increment_counters call in the batch case
COUNTERS = (  # the counters the bench creates (and drops at the end)
    "bench_fast",
    "bench_durable",
    "bench_ids",
    "bench_batch",
    "bench_batch_ids",
    "bench_fold_live",
    "bench_fold_backfill",
    "bench_live",
    "bench_read",
    "bench_client",
    "bench_ceiling",
    "bench_plain_warmup",
    "bench_par_plain_1",
    "bench_par_plain_2",
    "bench_sustained_10000",
    "bench_sustained_1000000",
    "bench_tracked",
)


@dataclass(frozen=True)
class Plan:
    """How long and how big each part of the run is."""

    seconds: int  # each pgbench case
    clients: int
    batch_clients: int
    redis_seconds: int
    fold_deltas: int
    lag_seconds: int
    history: tuple[int, ...]
    value_calls: int  # counter_value calls per history size
    count_budget_s: float  # time spent on count(*) samples per history size
    client_threads: int = 16  # the Python client case: threads of one process
    client_seconds: float = 10  # each of its three runs
    hot_rounds: int = 3  # interleaved rounds of the hot-path comparison
    hot_seconds: int = 6  # each case of a round
    sustained_seconds: int = 40  # each cardinality of the sustained-ingest case


FULL = Plan(
    seconds=15,
    clients=16,
    batch_clients=2,
    redis_seconds=10,
    fold_deltas=1_000_000,
    lag_seconds=20,
    history=(100_000, 1_000_000, 10_000_000),
    value_calls=2_000,
    count_budget_s=8.0,
)
QUICK = Plan(
    seconds=2,
    clients=4,
    batch_clients=2,
    redis_seconds=1,
    fold_deltas=20_000,
    lag_seconds=3,
    history=(1_000, 10_000),
    value_calls=50,
    count_budget_s=0.5,
    client_seconds=1.5,
    hot_rounds=1,
    hot_seconds=2,
    sustained_seconds=3,
)
