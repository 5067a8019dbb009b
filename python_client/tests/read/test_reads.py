"""Reads that never lie: one key's poison never fails a read of the others,
and a key whose deltas a fold set aside is read with a WARNING naming
tally.quarantined, until they are released.
"""

from __future__ import annotations

import psycopg


def test_one_keys_overflow_never_fails_a_read_of_the_others(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('r')")
    conn.execute(
        "SELECT tally.increment_counters('{r,r,r}', '{poison,poison,fine}',"
        " '{9223372036854775807,9223372036854775807,5}')"
    )
    conn.execute("SELECT tally.increment_counter('r', 'other', 2)")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    top = conn.execute("SELECT key, value FROM tally.top_keys('r', 'all', NULL)").fetchall()
    assert top == [("fine", 5), ("other", 2)]
    day = conn.execute("SELECT key, value FROM tally.top_keys('r', 'day', now())").fetchall()
    assert day == [("fine", 5), ("other", 2)]
    assert sum('key "poison" of counter "r" left out' in n for n in notices) == 2
    assert conn.execute("SELECT tally.counter_value('r', 'fine')").fetchone()[0] == 5


def test_a_read_of_a_key_with_deltas_set_aside_warns(conn: psycopg.Connection) -> None:
    notices: list[tuple[str, str, str, str]] = []  # (a Diagnostic is valid during its callback only)
    conn.add_notice_handler(
        lambda d: notices.append((d.severity_nonlocalized, d.message_primary, d.message_detail, d.message_hint))
    )
    conn.execute("SELECT tally.create_counter('q')")
    conn.execute("SELECT tally.increment_counter('q', 'k', 9223372036854775807)")
    conn.execute("SELECT tally.increment_counter('q', 'k', 10)")
    conn.execute("SELECT tally.increment_counter('q', 'ok', 1)")
    conn.execute("CALL tally.compact()")
    (set_aside,) = conn.execute("SELECT count(*) FROM tally.quarantine").fetchone()
    assert set_aside == 2
    notices.clear()
    assert conn.execute("SELECT tally.counter_value('q', 'ok')").fetchone()[0] == 1
    assert notices == []  # a clean key: nothing to say
    assert conn.execute("SELECT tally.counter_value('q', 'k')").fetchone()[0] == 0
    ((severity, primary, detail, hint),) = notices
    assert severity == "WARNING"
    assert primary == 'tally.counter_value: key "k" of counter "q" has 2 deltas set aside, not counted in this value'
    assert "tally.quarantined" in detail
    assert "tally.release_quarantined('q', 'k', 'apply')" in hint
    notices.clear()
    conn.execute("SELECT * FROM tally.counter_series('q', 'k', 'day', now() - interval '1 day', now())").fetchall()
    conn.execute("SELECT * FROM tally.top_keys('q', 'all', now())").fetchall()
    assert [n[1] for n in notices] == [
        'tally.counter_series: key "k" of counter "q" has 2 deltas set aside, not counted in this value',
        'tally.top_keys: counter "q" has 2 deltas set aside, not counted in these values',
    ]
    assert conn.execute("SELECT tally.release_quarantined('q', 'k', 'discard')").fetchone()[0] == 2
    notices.clear()
    assert conn.execute("SELECT tally.counter_value('q', 'k')").fetchone()[0] == 0
    assert notices == []
