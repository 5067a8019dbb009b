"""Roles and grants on every node: an application login granted
tally_writer increments through the coordinator (the call runs on the
key's worker, as that login), a tally_reader login reads, and neither may
do more, on the coordinator or on a worker."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@pytest.fixture
def logins(cconn: psycopg.Connection, name: str):
    made = []
    for role, grant in (
        (f"{name}_app", "tally_writer"),
        (f"{name}_dash", "tally_reader"),
        (f"{name}_ops", "tally_admin"),
    ):
        cconn.execute(f"CREATE ROLE {role} LOGIN")  # Citus creates it on every node
        cconn.execute(f"GRANT {grant} TO {role}")
        made.append(role)
    yield made
    for role in made:
        cconn.execute(f"DROP ROLE {role}")


def test_writer_and_reader_logins_work_through_the_coordinator_and_no_further(
    citus_dsn: str, cconn: psycopg.Connection, name: str, logins: list[str]
) -> None:
    app, dash, ops = logins
    params = conninfo_to_dict(citus_dsn)
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    with psycopg.connect(make_conninfo(**{**params, "user": app}), autocommit=True) as conn:
        for k in range(20):  # keys on both workers
            assert conn.execute("SELECT tally.increment_counter(%s, %s, 2)", (name, str(k))).fetchone() == (True,)
        assert conn.execute(
            "SELECT tally.increment_counters(ARRAY[%s, %s]::text[], ARRAY['a', 'b'], ARRAY[1, 1]::bigint[])",
            (name, name),
        ).fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT tally.counter_value(%s, '1')", (name,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM tally.delta")
    with psycopg.connect(make_conninfo(**{**params, "user": ops}), autocommit=True) as conn:
        conn.execute("CALL tally.compact()")  # an operator's login folds on the workers
        assert conn.execute("SELECT count(*) FROM tally.maintain() WHERE step = 'failed'").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM tally._fold_step(1)")  # the distributed fold step
    assert cconn.execute(
        "SELECT count(*) FROM tally.delta WHERE counter_id = (SELECT id FROM tally.counters WHERE name = %s)", (name,)
    ).fetchone() == (0,)
    with psycopg.connect(make_conninfo(**{**params, "user": dash}), autocommit=True) as conn:
        for k in range(20):
            assert conn.execute("SELECT tally.counter_value(%s, %s)", (name, str(k))).fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM tally.health WHERE \"check\" = 'crash'").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT tally.increment_counter(%s, '1')", (name,))
        # (it reads tally's tables, as the views need on Citus; never writes them)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM tally.totals")
    # the same privileges on every worker (a login that connects to one directly)
    rows = cconn.execute(
        """
        SELECT r.nodeport, r.result FROM run_command_on_workers($$
            SELECT string_agg(format('%s:%s', u.role, has_function_privilege(u.role,
                       'tally.increment_counter(text, text, bigint, timestamptz, text)', 'EXECUTE')),
                   ',' ORDER BY u.role)
            FROM unnest(ARRAY['tally_writer', 'tally_reader']) AS u (role)
        $$) AS r
        """
    ).fetchall()
    assert len(rows) == 2
    assert all(result == "tally_reader:f,tally_writer:t" for _, result in rows), rows
