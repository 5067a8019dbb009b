"""Every public function through every node. Citus syncs its metadata to
the workers, so a client may connect to any node: increments, batches,
event ids and every read work through a worker, exactly (the per-key ones
are sent to the key's worker); an administration call that needs the
coordinator (its bookkeeping, the counters' sequence, the crash log)
refuses on a worker with SQLSTATE 0A000 and a HINT naming the coordinator,
and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ADMIN_ON_COORDINATOR = [
    "SELECT tally.create_counter('made_on_a_worker')",
    "SELECT * FROM tally.maintain()",
    "SELECT * FROM tally.compact_step()",
    "CALL tally.compact()",
    "CALL tally.compact_loop(1, 0.2)",
    "SELECT tally.acknowledge_crash()",
    "SELECT tally.release_quarantined({name!r}, NULL, 'discard')",
]


def workers(cconn: psycopg.Connection, citus_dsn: str) -> list[str]:
    params = conninfo_to_dict(citus_dsn)
    ports = [r[0] for r in cconn.execute("SELECT nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport")]
    return [make_conninfo(**{**params, "port": str(p)}) for p in ports]


def test_every_public_function_through_every_worker(citus_dsn: str, cconn: psycopg.Connection, name: str) -> None:
    cconn.execute("SELECT tally.create_counter(%s, ARRAY['hour', 'day'])", (name,))
    cconn.execute("SELECT tally.create_counter(%s)", (name + "_gone",))
    coordinator = cconn.execute("SELECT format('%s:%s', nodename, nodeport) FROM pg_dist_node WHERE groupid = 0")
    (coordinator,) = coordinator.fetchone()
    expected: dict[str, int] = {}
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    nodes = workers(cconn, citus_dsn)
    assert len(nodes) >= 2
    for n, dsn in enumerate(nodes):
        with psycopg.connect(dsn, autocommit=True) as w:
            assert w.execute("SELECT groupid <> 0 FROM pg_dist_local_group").fetchone() == (True,)
            keys = [f"w{n}-{i}" for i in range(10)]  # keys of every worker's shards
            for k in keys:
                assert w.execute("SELECT tally.increment_counter(%s, %s, 2, %s)", (name, k, hour)).fetchone() == (True,)
                expected[k] = expected.get(k, 0) + 2
            assert w.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], NULL, %s::text[])",
                ([name] * 10, keys, [1] * 10, [f"batch-{n}-{k}" for k in keys]),
            ).fetchone() == (10,)
            for k in keys:
                expected[k] += 1
            # a replay through any node counts once
            assert w.execute(
                "SELECT tally.increment_counter(%s, %s, 5, now(), %s)", (name, keys[0], f"ev-{n}")
            ).fetchone() == (True,)
            assert w.execute(
                "SELECT tally.increment_counter(%s, %s, 5, now(), %s)", (name, keys[0], f"ev-{n}")
            ).fetchone() == (False,)
            expected[keys[0]] += 5
            for k in keys:  # read your writes, folded or not
                assert w.execute("SELECT tally.counter_value(%s, %s)", (name, k)).fetchone() == (expected[k],)
            assert w.execute(
                "SELECT value FROM tally.counter_series(%s, %s, 'hour', %s, %s)",
                (name, keys[1], hour, hour + timedelta(hours=1)),
            ).fetchall() == [(2,)]  # (the batch went to the hour of now)
            top = dict(w.execute("SELECT key, value FROM tally.top_keys(%s, 'all', now(), 1000)", (name,)).fetchall())
            assert top == expected
            # a page of keys of every worker's shards, and windows
            page = [*expected, "never"]
            assert w.execute("SELECT key, value FROM tally.counter_values(%s, %s)", (name, page)).fetchall() == [
                (k, expected.get(k, 0)) for k in page
            ]
            assert w.execute(
                "SELECT tally.counter_window(%s, %s, %s, %s)", (name, keys[1], hour, hour + timedelta(hours=1))
            ).fetchone() == (2,)
            next_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            assert w.execute(
                "SELECT tally.counter_window(%s, %s, %s, %s)", (name, keys[1], hour, next_hour)
            ).fetchone() == (3,)
            assert w.execute("SELECT role FROM tally.node_status()").fetchone() == ("primary",)
            assert w.execute("SELECT count(*) > 0 FROM tally.pending_deltas()").fetchone() == (True,)
            assert w.execute("SELECT count(*) FROM tally.node_deadlocks()").fetchone()[0] == len(nodes) + 1
            assert w.execute(
                "SELECT pending_deltas > 0 FROM tally.counter_status WHERE counter = %s", (name,)
            ).fetchone()
            w.execute("SELECT tally.set_retention(%s, 'hour', interval '30 days')", (name,))
            w.execute("SELECT tally.reset_retention(%s, 'hour')", (name,))
            w.execute("SELECT tally.set_event_window(7)")
            w.execute("SELECT count(*) FROM tally.check_drift(%s)", (name,)).fetchone()
            # administration that needs the coordinator: refused, nothing done
            for sql in ADMIN_ON_COORDINATOR:
                with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
                    w.execute(sql.format(name=name))
                diag = refused.value.diag
                assert "an administration call, run on the coordinator, not on this worker" in diag.message_primary
                assert coordinator in diag.message_hint, diag.message_hint
            assert w.execute("SELECT count(*) FROM tally.counters WHERE name = 'made_on_a_worker'").fetchone() == (0,)
            if n == 0:
                w.execute("SELECT tally.drop_counter(%s)", (name + "_gone",))
    assert cconn.execute("SELECT count(*) FROM tally.counters WHERE name = %s", (name + "_gone",)).fetchone() == (0,)
    cconn.execute("CALL tally.compact()")
    assert dict(cconn.execute("SELECT key, value FROM tally.top_keys(%s, 'all', now(), 1000)", (name,)).fetchall()) == (
        expected
    )
    cconn.execute("SELECT tally.drop_counter(%s)", (name,))
