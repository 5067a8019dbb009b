"""tally distributed on Citus: what is distributed, colocated and
delegated, and that the work runs where the data is."""

from __future__ import annotations

import re

import psycopg

REFERENCE = {
    "granularities", "counters", "settings", "write_gen", "event_days", "retention",
    "coverage", "sources", "drift_checks", "drift_runs", "corrections",
}  # fmt: skip
DISTRIBUTED = {
    "delta", "totals", "rollup_minute", "rollup_hour", "rollup_day", "rollup_week", "rollup_month",
    "event_ids", "quarantine", "crash_marker",
}  # fmt: skip
DELEGATED = {"increment_counter", "counter_value", "counter_series"}


def test_the_migration_distributed_tally(cconn: psycopg.Connection) -> None:
    assert cconn.execute("SELECT tally._distributed()").fetchone()[0] is True
    rows = cconn.execute(
        """
        SELECT c.relname, p.partmethod::text || p.repmodel::text, p.colocationid, a.attname
        FROM pg_dist_partition AS p
        JOIN pg_class AS c ON c.oid = p.logicalrelid
        LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = column_to_column_name(c.oid, p.partkey)
        WHERE c.relnamespace = 'tally'::regnamespace AND NOT c.relispartition
        """
    ).fetchall()
    kinds = {r[0]: r for r in rows}
    assert {n for n, (_, m, _, _) in kinds.items() if m == "nt"} == REFERENCE
    assert {n for n, (_, m, _, _) in kinds.items() if m[0] == "h"} == DISTRIBUTED
    # a Citus local table (on the coordinator, where tracked tables are
    # refused for now), made so by its foreign key to tally.counters
    assert {n for n, (_, m, _, _) in kinds.items() if m == "ns"} == {"tracked_tables"}
    # one colocation group, distributed by key
    assert {kinds[t][2] for t in DISTRIBUTED} == {kinds["delta"][2]}
    assert {kinds[t][3] for t in DISTRIBUTED} == {"key"}
    # every partition of a distributed table is distributed too, colocated
    local_parts = cconn.execute(
        """
        SELECT i.inhrelid::regclass::text
        FROM pg_inherits AS i
        WHERE i.inhparent = ANY (ARRAY['tally.delta', 'tally.totals', 'tally.rollup_minute', 'tally.rollup_hour',
                                       'tally.rollup_day', 'tally.rollup_week', 'tally.rollup_month',
                                       'tally.event_ids']::regclass[])
          AND NOT EXISTS (SELECT FROM pg_dist_partition AS p
                          WHERE p.logicalrelid = i.inhrelid AND p.colocationid = %s)
        """,
        (kinds["delta"][2],),
    ).fetchall()
    assert local_parts == []
    # shards on both workers
    nodes = cconn.execute(
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'tally.totals'::regclass"
    ).fetchone()[0]
    assert nodes == 2
    # the fast delta partitions stay UNLOGGED on the workers
    persistence = cconn.execute(
        """
        SELECT DISTINCT r.result
        FROM run_command_on_shards(
            'tally.delta_g0_fast_0', $$SELECT relpersistence FROM pg_class WHERE oid = '%s'::regclass$$
        ) AS r
        """
    ).fetchall()
    assert persistence == [("u",)]


def test_the_per_key_functions_are_delegated_to_the_key_s_worker(cconn: psycopg.Connection) -> None:
    rows = cconn.execute(
        """
        SELECT p.proname, o.distribution_argument_index, o.colocationid
        FROM pg_dist_object AS o JOIN pg_proc AS p ON p.oid = o.objid
        WHERE o.classid = 'pg_proc'::regclass AND p.pronamespace = 'tally'::regnamespace
          AND o.distribution_argument_index IS NOT NULL
        """
    ).fetchall()
    delta_group = cconn.execute(
        "SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'tally.delta'::regclass"
    ).fetchone()[0]
    assert {r[0] for r in rows} == DELEGATED
    assert all(index == 1 and group == delta_group for _, index, group in rows)  # p_key, with the deltas


def test_an_increment_is_one_task_on_one_worker(cconn: psycopg.Connection, name: str) -> None:
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    ports = set()
    for key in ("1", "2", "3", "4", "5", "6", "7", "8"):
        plan = "\n".join(
            r[0]
            for r in cconn.execute(
                "EXPLAIN (VERBOSE) SELECT tally.increment_counter(%s::text, %s::text)", (name, key)
            ).fetchall()
        )
        assert "Task Count: 1" in plan, plan
        assert re.search(r"Query: SELECT tally\.increment_counter\(", plan), plan
        ports.update(re.findall(r"Node: host=\S+ port=(\d+)", plan))
    assert len(ports) == 2, ports  # keys on both workers, each call on one


def test_a_fold_runs_on_both_workers_and_pulls_no_row_to_the_coordinator(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    """What the coordinator sends while CALL tally.compact() folds 2,000
    deltas (citus.log_remote_commands): per shard an INSERT ... SELECT from
    the colocated delta shard and a DELETE, on both workers, in REPEATABLE
    READ transactions committed by two-phase commit; no delta row is read
    back (no intermediate result, no COPY out of a delta shard)."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    cconn.execute(
        "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[2000]),"
        " ARRAY(SELECT (g %% 200)::text FROM generate_series(1, 2000) AS g), array_fill(1::bigint, ARRAY[2000]))",
        (name,),
    )
    logs: list[tuple[str, str]] = []
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: logs.append((d.message_primary or "", d.message_detail or "")))
        conn.execute("SET citus.log_remote_commands = on")
        conn.execute("SET client_min_messages = log")
        conn.execute("CALL tally.compact()")
    workers = {str(r[0]) for r in cconn.execute("SELECT nodeport FROM pg_dist_node WHERE groupid <> 0").fetchall()}
    assert len(workers) == 2

    def sent(pattern: str) -> dict[str, int]:
        """Per worker port, how many commands matching `pattern` it got."""
        ports: dict[str, int] = {}
        for message, detail in logs:
            port = re.search(r"@[^:]+:(\d+)", detail)
            if port and re.search(pattern, message, re.DOTALL):
                ports[port.group(1)] = ports.get(port.group(1), 0) + 1
        return ports

    assert set(sent(r"^issuing BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ")) == workers
    upserts = sent(r"^issuing INSERT INTO tally\.totals_\d+ .* FROM tally\.delta_\d+ .*GROUP BY")
    assert set(upserts) == workers and sum(upserts.values()) == 8, upserts  # every shard, where it is
    for g in ("minute", "hour", "day", "week", "month"):
        assert sum(sent(rf"^issuing INSERT INTO tally\.rollup_{g}_\d+ .* FROM \(?tally\.delta_\d+ ").values()) == 8
    assert sum(sent(r"^issuing DELETE FROM tally\.delta_\d+").values()) == 8
    assert set(sent(r"^issuing PREPARE TRANSACTION")) == workers
    assert set(sent(r"^issuing COMMIT PREPARED")) == workers
    # Every command that reads a delta shard is one of four: the per-day
    # summary for the partitions (counter, day, first and latest time, count: a row
    # per counter and day, not per delta), an INSERT ... SELECT that stays on
    # its worker, the DELETE, or the backlog sample the compactor takes at
    # most every 10 s (one count per shard). No delta row is shipped anywhere.
    on_deltas = [m for m, _ in logs if m.startswith("issuing") and re.search(r"tally\.delta_\d+", m)]
    summary = re.compile(r"^issuing SELECT counter_id, min\(at\) AS lo, max\(at\) AS hi, count\(\*\).*GROUP BY", re.S)
    upsert = re.compile(r"^issuing INSERT INTO tally\.(totals|rollup_\w+)_\d+ ", re.DOTALL)
    delete = re.compile(r"^issuing DELETE FROM tally\.delta_\d+ delta$")
    sample = re.compile(r"^issuing SELECT count\(\*\) AS count FROM tally\.delta_\d+ delta WHERE true$")
    others = [
        m for m in on_deltas if not (summary.search(m) or upsert.search(m) or delete.search(m) or sample.search(m))
    ]
    assert others == [], others[:3]
    assert not any("read_intermediate_result" in m or "COPY" in m for m in on_deltas)

    (value,) = cconn.execute("SELECT tally.counter_value(%s, '7')", (name,)).fetchone()
    assert value == 10
    pending = cconn.execute(
        "SELECT count(*) FROM tally.delta WHERE counter_id = (SELECT id FROM tally.counters WHERE name = %s)", (name,)
    ).fetchone()[0]
    assert pending == 0
