"""The cases of tally on Citus beside single-node tally (`make bench-citus`,
python -m bench.citus): increments and batches (ingest.py), fold rates (fold.py),
the fixed cost of a fold step (step_cost.py), each run against every
database under test (nodes.py), with the CPU time each node used."""

from __future__ import annotations

import psycopg

from bench.counters import counter_total


def folded_total(conn: psycopg.Connection, counter: str) -> int:
    """Fold everything, then the counter's sum of totals."""
    conn.execute("CALL tally.compact()")
    return counter_total(conn, counter)
