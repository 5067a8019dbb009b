"""Hostile input, fuzzed: random counter names, keys, deltas, timestamps and
event ids thrown at the SQL API (issue 7).

Every call either succeeds exactly as the model kept here says (values per
key, buckets per granularity, event ids applied at most once), or fails
cleanly: the SQLSTATE and message the model predicts, a message naming the
tally function, and nothing changed. Deltas in the main test stay within a
budget that no fold can overflow; overflow has tests of its own below.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from truth import GRANULARITIES, bucket

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NOW = datetime.now(UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH_LIMIT = 100_000
NAME_RE = re.compile(r"[a-z][a-z0-9_.:-]{0,62}")  # tally.create_counter's rule

# The counters every example starts from: name -> (granularities, durable).
BASE = {
    "fz_fast": (GRANULARITIES, False),
    "fz_durable": (("hour", "day"), True),
    "fz_total": ((), False),
}
# The SQLSTATEs the API refuses input with; anything else is a bug.
CLEAN = {"22001", "22004", "22008", "22023", "2202E", "42602", "42704", "42710", "54000"}

# Everything a refused call must leave alone, fingerprinted.
STATE_TABLES = ["counters", "delta", "event_ids", "retention", "sources", "totals", "quarantine", "granularities"]
STATE_TABLES += [f"rollup_{g}" for g in GRANULARITIES]
SNAPSHOT = "SELECT ARRAY[{}]".format(
    ", ".join(
        f"(SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM tally.{t} AS r)"
        for t in STATE_TABLES
    )
)


# -- inputs -------------------------------------------------------------------


class Omit:
    """An argument left out of the call (its default applies)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = Omit()


@dataclass(frozen=True)
class At:
    """A timestamp as sent (`sql`, None for NULL), its instant when finite
    (`when`), and whether tally accepts it for an increment."""

    sql: str | None
    when: datetime | None
    valid: bool
    rank: int = 0  # -1 for -infinity, 1 for infinity (time ranges)

    def key(self) -> tuple[int, datetime]:
        return (self.rank, self.when or EPOCH)


def _at(when: datetime, offset_minutes: int = 0) -> At:
    valid = EPOCH <= when <= NOW + timedelta(days=1)
    shown = when.astimezone(timezone(timedelta(minutes=offset_minutes))) if offset_minutes else when
    return At(shown.isoformat(), when, valid)


INFINITY = At("infinity", None, False, 1)
MINUS_INFINITY = At("-infinity", None, False, -1)
# Valid instants cluster on a few days so the folds create few partitions.
ANCHOR_DAYS = [
    EPOCH,
    datetime(1999, 12, 31, tzinfo=UTC),
    datetime(2024, 2, 29, tzinfo=UTC),
    (NOW - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0),
    NOW.replace(hour=0, minute=0, second=0, microsecond=0),
]
text_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


@st.composite
def valid_ats(draw) -> At:
    day = draw(st.sampled_from(ANCHOR_DAYS))
    when = day + draw(st.timedeltas(timedelta(0), timedelta(days=1) - timedelta(microseconds=1)))
    when = min(when, NOW + timedelta(hours=23))
    return _at(when, draw(st.integers(-14 * 60, 14 * 60)))


@st.composite
def mostly(draw, good: st.SearchStrategy, bad: st.SearchStrategy, weight: int):
    """`good` about `weight` times as often as `bad` (st.one_of would not
    weigh a strategy listed twice)."""
    return draw(bad) if draw(st.integers(0, weight)) == 0 else draw(good)


good_ats = mostly(valid_ats(), st.sampled_from([_at(EPOCH), At("epoch", EPOCH, True)]), 4)
bad_ats = st.one_of(
    st.just(At(None, None, False)),
    st.sampled_from(
        [
            INFINITY,
            MINUS_INFINITY,
            At("1969-12-31 23:59:59.999999+00", None, False),
            At("4713-01-01 00:00:00+00 BC", None, False),
            At("294276-12-31 23:59:59+00", None, False),
        ]
    ),
    st.datetimes(datetime(1, 1, 2), datetime(1969, 12, 31, 23, 59, 59, 999999)).map(
        lambda d: _at(d.replace(tzinfo=UTC))
    ),
    st.datetimes(NOW.replace(tzinfo=None) + timedelta(days=2), datetime(9999, 12, 30)).map(
        lambda d: _at(d.replace(tzinfo=UTC))
    ),
)
range_bounds = mostly(
    st.one_of(
        valid_ats(),
        st.sampled_from([INFINITY, MINUS_INFINITY]),
        st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 30)).map(lambda d: _at(d.replace(tzinfo=UTC))),
    ),
    st.just(At(None, None, False)),
    6,
)

HOSTILE = [
    "x'); DROP TABLE tally.counters; --",
    "'; DELETE FROM tally.delta; --",
    'a"b',
    "o'reilly",
    "a;b",
    "zählung",
    "カウンター",
    "🎉",
    "views\n",
    "\\",
    "%s",
    "%",
    "{a,b}",
    "NULL",
]
good_names = st.sampled_from(sorted(BASE))
bad_names = st.one_of(
    st.sampled_from(HOSTILE),
    st.from_regex(NAME_RE, fullmatch=True),
    st.text(text_chars, max_size=70),
    st.sampled_from(["", "a" * 63, "a" * 64, "x" * 5000]),
    st.none(),
)
good_keys = st.one_of(
    st.sampled_from(["a", "b", "k 1", "é", "😀"]),
    st.sampled_from(HOSTILE),
    st.text(text_chars, min_size=1, max_size=12),
    st.sampled_from(["x" * 512, "é" * 256, "😀" * 128]),
)
bad_keys = st.one_of(
    st.text(text_chars, min_size=120, max_size=300).filter(lambda k: len(k.encode()) > 512),
    st.sampled_from(["", "x" * 513, "é" * 256 + "x", "😀" * 129, "ß" * 257, "y" * 100_000]),
    st.none(),
)
good_deltas = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([0, 1, -1, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, 2**62, -(2**62)]),
    st.integers(INT64_MIN, INT64_MAX),
)
good_event_ids = mostly(
    st.sampled_from(["e1", "e2", "é-1"]),  # replays
    st.one_of(
        st.sampled_from(["x" * 256, "é" * 128, *HOSTILE]),
        st.text(text_chars, min_size=1, max_size=20),
    ),
    2,
)
bad_event_ids = st.one_of(
    st.sampled_from(["", "x" * 257, "é" * 129]),
    st.text(text_chars, min_size=60, max_size=100).filter(lambda e: len(e.encode()) > 256),
)
good_granularities = st.sampled_from([*GRANULARITIES, "all"])
bad_granularities = st.sampled_from(["fortnight", "Day", "", "all; --", None])

names = mostly(good_names, bad_names, 3)
keys = mostly(good_keys, bad_keys, 4)
granularities = mostly(good_granularities, bad_granularities, 4)


@st.composite
def increment_ops(draw) -> tuple:
    return (
        "inc",
        draw(names),
        draw(keys),
        draw(st.one_of(st.just(OMIT), mostly(good_deltas, st.none(), 8))),
        draw(st.one_of(st.just(OMIT), mostly(good_ats, bad_ats, 3))),
        draw(mostly(mostly(good_event_ids, bad_event_ids, 4), st.sampled_from([OMIT, None]), 2)),
    )


@st.composite
def batch_ops(draw) -> tuple:
    n = draw(st.integers(0, 6))

    def array(good, bad, shapes):
        shape = draw(st.sampled_from(shapes))
        if shape == "null":
            return None
        size = n if shape == "n" else draw(st.integers(0, 8))
        return draw(st.lists(mostly(good, bad, 15), min_size=size, max_size=size))

    common = ["n"] * 15 + ["other", "null"]
    return (
        "incs",
        array(good_names, bad_names, common),
        array(good_keys, bad_keys, common),
        array(good_deltas, st.none(), common),
        array(good_ats, bad_ats, ["n"] * 4 + ["other", "null", "null"]),
        array(good_event_ids, st.one_of(st.none(), bad_event_ids), ["n"] * 2 + ["other", "null", "null", "null"]),
    )


@st.composite
def series_ops(draw) -> tuple:
    lo, hi = draw(range_bounds), draw(range_bounds)
    if None not in (lo.sql, hi.sql) and lo.key() > hi.key() and draw(st.integers(0, 4)) > 0:
        lo, hi = hi, lo  # mostly a proper range
    return ("series", draw(names), draw(keys), draw(granularities), lo, hi)


OPS = {
    "inc": increment_ops(),
    "incs": batch_ops(),
    "value": st.tuples(st.just("value"), names, keys),
    "series": series_ops(),
    "top": st.tuples(
        st.just("top"),
        names,
        granularities,
        range_bounds,
        mostly(st.sampled_from([1, 3, 10_000]), st.sampled_from([None, 0, -1, 10_001]), 4),
    ),
    "create": st.tuples(
        st.just("create"),
        st.one_of(st.from_regex(NAME_RE, fullmatch=True), names),
        st.one_of(st.none(), st.lists(granularities, max_size=4)),
        mostly(st.booleans(), st.none(), 4),
    ),
    "drop": st.tuples(st.just("drop"), mostly(bad_names, good_names, 2)),
}
WEIGHTS = {"inc": 5, "incs": 4, "value": 2, "series": 2, "top": 1, "create": 1, "drop": 1}
ops = st.sampled_from([kind for kind, weight in WEIGHTS.items() for _ in range(weight)]).flatmap(OPS.__getitem__)


# -- the model ----------------------------------------------------------------


@dataclass
class Counter:
    name: str
    granularities: tuple[str, ...]
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[tuple[str, str], dict[datetime, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    events: set[str] = field(default_factory=set)
    # Sums of the positive and of the negative deltas per key: while both fit
    # a bigint, no partial sum a fold makes (a total, a bucket, a minute) can
    # overflow.
    plus: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    minus: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: str, delta: int, at: datetime) -> None:
        self.totals[key] += delta
        for g in self.granularities:
            self.buckets[(key, g)][bucket(g, at)] += delta
        if delta > 0:
            self.plus[key] += delta
        else:
            self.minus[key] += delta

    def series(self, key: str, g: str) -> list[tuple[datetime, int]]:
        return sorted(self.buckets.get((key, g), {}).items())


@dataclass(frozen=True)
class Refusal:
    sqlstate: str
    message: str  # the message starts with this


def within_budget(elements: list[tuple[Counter, str, int]]) -> bool:
    plus: dict[tuple[str, str], int] = defaultdict(int)
    minus: dict[tuple[str, str], int] = defaultdict(int)
    for c, key, delta in elements:
        if delta > 0:
            plus[(c.name, key)] += delta
        else:
            minus[(c.name, key)] += delta
        if c.plus[key] + plus[(c.name, key)] > INT64_MAX or c.minus[key] + minus[(c.name, key)] < INT64_MIN:
            return False
    return True


def counter_refusal(fn: str, name: str | None, model: dict[str, Counter]) -> Refusal | None:
    if name is None or name == "":
        return Refusal("22004", f"{fn}: counter name must not be NULL or empty")
    if name not in model:
        return Refusal("42704", f'{fn}: unknown counter "{name}"')
    return None


def key_refusal(fn: str, key: str | None) -> Refusal | None:
    if key is None or key == "":
        return Refusal("22004", f"{fn}: key must not be NULL or empty")
    size = len(key.encode())
    if size > 512:
        return Refusal("22001", f"{fn}: key of {size} bytes is over the 512-byte limit")
    return None


def at_refusal(fn: str, at: At) -> Refusal | None:
    if at.sql is None:
        return Refusal("22004", f"{fn}: timestamp must not be NULL")
    if not at.valid:
        return Refusal("22008", f"{fn}: timestamp ")  # then the value as the server prints it
    return None


def event_refusal(fn: str, event_id: str) -> Refusal | None:
    if event_id == "":
        return Refusal("22023", f"{fn}: event id must not be empty")
    size = len(event_id.encode())
    if size > 256:
        return Refusal("22001", f"{fn}: event id of {size} bytes is over the 256-byte limit")
    return None


def granularity_refusal(fn: str, c: Counter, g: str | None) -> Refusal | None:
    if g is None:
        return Refusal("22004", f"{fn}: granularity must not be NULL")
    if g == "all":
        return None
    if g not in GRANULARITIES:
        return Refusal("22023", f'{fn}: unknown granularity "{g}"')
    if g not in c.granularities:
        return Refusal("22023", f'{fn}: counter "{c.name}" does not keep {g} buckets')
    return None


def first(*refusals: Refusal | None) -> Refusal | None:
    return next((r for r in refusals if r is not None), None)


# -- calling the API ----------------------------------------------------------


def snapshot(conn: psycopg.Connection) -> list[str]:
    return conn.execute(SNAPSHOT).fetchone()[0]


def call(conn: psycopg.Connection, sql: str, params: tuple, expected: Refusal | None) -> list[tuple] | None:
    """Run one API call; check it fails exactly as `expected` says (with
    nothing changed), or succeeds when nothing is expected. Returns the rows
    of a success."""
    before = snapshot(conn)
    try:
        rows = conn.execute(sql, params).fetchall()
    except psycopg.Error as e:
        message = e.diag.message_primary or ""
        changed = snapshot(conn) != before
        assert e.sqlstate in CLEAN and message.startswith("tally.") and not changed, (
            f"unclean failure: {e.sqlstate} {message!r} (state changed: {changed})"
        )
        assert expected is not None, f"refused valid input: {e.sqlstate} {message!r}"
        assert (e.sqlstate, message[: len(expected.message)]) == (expected.sqlstate, expected.message), message
        return None
    assert expected is None, f"accepted bad input, expected {expected}"
    return rows


class Run:
    """One example: the model of every counter, and the calls."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.model: dict[str, Counter] = {}
        for name in [r[0] for r in conn.execute("SELECT name FROM tally.counters").fetchall()]:
            conn.execute("SELECT tally.drop_counter(%s)", (name,))
        for name, (grans, durable) in BASE.items():
            conn.execute("SELECT tally.create_counter(%s, %s, %s)", (name, list(grans), durable))
            self.model[name] = Counter(name, grans)

    def inc(self, name, key, delta, at, event_id) -> None:
        fn = "tally.increment_counter"
        args, params = ["%s::text", "%s::text"], [name, key]
        for arg, value, cast in (
            ("p_delta", delta, "bigint"),
            ("p_at", at, "timestamptz"),
            ("p_event_id", event_id, "text"),
        ):
            if value is not OMIT:
                args.append(f"{arg} => %s::{cast}")
                params.append(value.sql if isinstance(value, At) else value)
        expected = first(
            counter_refusal(fn, name, self.model),
            key_refusal(fn, key),
            Refusal("22004", f'{fn}: delta for counter "{name}" must not be NULL') if delta is None else None,
            None if at is OMIT else at_refusal(fn, at),
            None if event_id in (OMIT, None) else event_refusal(fn, event_id),
        )
        c = self.model.get(name)
        delta = 1 if delta is OMIT else delta
        replay = expected is None and event_id not in (OMIT, None) and event_id in c.events
        if expected is None and not replay and not within_budget([(c, key, delta)]):
            note(f"skipped (over the delta budget): {name!r} {key!r} {delta}")
            return
        before = snapshot(self.conn) if replay else None
        rows = call(self.conn, f"SELECT now(), tally.increment_counter({', '.join(args)})", tuple(params), expected)
        if rows is None:
            return
        ((now, applied),) = rows
        assert applied is (not replay), (name, key, event_id)
        if replay:
            assert snapshot(self.conn) == before, "a replayed event id changed something"
            return
        c.add(key, delta, now if at is OMIT else at.when)
        if event_id not in (OMIT, None):
            c.events.add(event_id)
        self.check_value(c, key)

    def incs(self, names_, keys_, deltas_, ats, ids) -> None:
        fn = "tally.increment_counters"
        sql = (
            "SELECT now(), tally.increment_counters("
            "%s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[])"
        )
        params = (names_, keys_, deltas_, None if ats is None else [a.sql for a in ats], ids)
        expected, applied = self.expect_batch(fn, names_, keys_, deltas_, ats, ids)
        if expected is None and not within_budget([(c, k, d) for c, k, d, _, _ in applied]):
            note(f"skipped batch (over the delta budget): {len(applied)} elements")
            return
        rows = call(self.conn, sql, params, expected)
        if rows is None:
            return
        ((now, count),) = rows
        assert count == len(applied), (count, len(applied))
        for c, key, delta, at, event_id in applied:
            c.add(key, delta, now if at is None else at.when)
            if event_id is not None:
                c.events.add(event_id)
        for c, key, *_ in applied:
            self.check_value(c, key)

    def expect_batch(self, fn, names_, keys_, deltas_, ats, ids) -> tuple[Refusal | None, list]:
        if names_ is None or keys_ is None or deltas_ is None:
            return Refusal("22004", f"{fn}: p_counters, p_keys and p_deltas must not be NULL"), []
        n = len(names_)
        if (
            len(keys_) != n
            or len(deltas_) != n
            or (ats is not None and len(ats) != n)
            or (ids is not None and len(ids) != n)
        ):
            sizes = ", ".join(
                (
                    f"counters {n}",
                    f"keys {len(keys_)}",
                    f"deltas {len(deltas_)}",
                    f"ats {'NULL' if ats is None else len(ats)}",
                    f"event ids {'NULL' if ids is None else len(ids)}",
                )
            )
            return Refusal("2202E", f"{fn}: arrays differ in length ({sizes})"), []
        if n > BATCH_LIMIT:
            return Refusal("54000", f"{fn}: batch of {n} increments is over the limit of {BATCH_LIMIT}"), []
        for i in range(n):
            ef = f"{fn}: element {i + 1}"
            refusal = first(
                counter_refusal(ef, names_[i], self.model),
                key_refusal(ef, keys_[i]),
                Refusal("22004", f"{ef}: delta must not be NULL") if deltas_[i] is None else None,
                None if ats is None else at_refusal(ef, ats[i]),
                None
                if ids is None
                else (
                    Refusal("22004", f"{ef}: event id must not be NULL")
                    if ids[i] is None
                    else event_refusal(ef, ids[i])
                ),
            )
            if refusal is not None:
                return refusal, []
        applied, seen = [], set()
        for i in range(n):
            c = self.model[names_[i]]
            event_id = None if ids is None else ids[i]
            if event_id is not None:
                if (c.name, event_id) in seen or event_id in c.events:
                    continue
                seen.add((c.name, event_id))
            applied.append((c, keys_[i], deltas_[i], None if ats is None else ats[i], event_id))
        return None, applied

    def value(self, name, key) -> None:
        fn = "tally.counter_value"
        expected = first(counter_refusal(fn, name, self.model), key_refusal(fn, key))
        rows = call(self.conn, "SELECT tally.counter_value(%s::text, %s::text)", (name, key), expected)
        if rows is not None:
            assert rows == [(self.model[name].totals.get(key, 0),)], (name, key)

    def series(self, name, key, g, lo: At, hi: At) -> None:
        fn = "tally.counter_series"
        c = self.model.get(name)
        expected = first(
            counter_refusal(fn, name, self.model),
            key_refusal(fn, key),
            Refusal("22004", f"{fn}: p_from and p_to must not be NULL") if None in (lo.sql, hi.sql) else None,
            Refusal("22023", f"{fn}: p_from ") if lo.sql and hi.sql and lo.key() > hi.key() else None,
            None if c is None else granularity_refusal(fn, c, g),
            Refusal("22023", f'{fn}: granularity "all" has no buckets') if g == "all" else None,
        )
        rows = call(
            self.conn,
            "SELECT bucket, value FROM tally.counter_series("
            "%s::text, %s::text, %s::text, %s::timestamptz, %s::timestamptz)",
            (name, key, g, lo.sql, hi.sql),
            expected,
        )
        if rows is None:
            return
        want = []
        if lo.key() != hi.key():
            start = (lo.rank, bucket(g, lo.when) if lo.rank == 0 else EPOCH)
            want = [(b, v) for b, v in c.series(key, g) if (0, b) >= start and (0, b) < hi.key()]
        assert rows == want, (name, key, g, lo, hi)

    def top(self, name, g, at: At, limit) -> None:
        fn = "tally.top_keys"
        c = self.model.get(name)
        expected = first(
            counter_refusal(fn, name, self.model),
            None if c is None else granularity_refusal(fn, c, g),
            Refusal("22023", f"{fn}: limit {'NULL' if limit is None else limit} is out of range")
            if limit is None or not 1 <= limit <= 10_000
            else None,
            Refusal("22023", f"{fn}: bucket ") if g != "all" and (at.sql is None or at.rank != 0) else None,
        )
        rows = call(
            self.conn,
            "SELECT key, value FROM tally.top_keys(%s::text, %s::text, %s::timestamptz, %s::integer)",
            (name, g, at.sql, limit),
            expected,
        )
        if rows is None:
            return
        if g == "all":
            values = dict(c.totals)
        else:
            wanted, values = bucket(g, at.when), {}
            for (key, gran), series in c.buckets.items():
                if gran == g and wanted in series:
                    values[key] = series[wanted]
        assert rows == sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:limit], (name, g, at)

    def create(self, name, grans, durable) -> None:
        fn = "tally.create_counter"
        expected = first(
            Refusal("22004", f"{fn}: name must not be NULL or empty") if name in (None, "") else None,
            Refusal("42602", f'{fn}: invalid counter name "{name}"') if not NAME_RE.fullmatch(name or "x") else None,
            Refusal("22004", f'{fn}: granularities of "{name}" must not be NULL or hold NULL')
            if grans is None or None in grans
            else None,
            Refusal("22004", f'{fn}: durable flag of "{name}" must not be NULL') if durable is None else None,
            Refusal("22023", f"{fn}: unknown granularity ")
            if grans and any(g not in GRANULARITIES for g in grans if g is not None)
            else None,
            Refusal("42710", f'{fn}: counter "{name}" already exists') if name in self.model else None,
        )
        if (
            call(
                self.conn,
                "SELECT tally.create_counter(%s::text, %s::text[], %s::boolean)",
                (name, grans, durable),
                expected,
            )
            is None
        ):
            return
        self.model[name] = Counter(name, tuple(g for g in GRANULARITIES if g in grans))

    def drop(self, name) -> None:
        if (
            call(
                self.conn,
                "SELECT tally.drop_counter(%s::text)",
                (name,),
                counter_refusal("tally.drop_counter", name, self.model),
            )
            is not None
        ):
            del self.model[name]

    def check_value(self, c: Counter, key: str) -> None:
        got = self.conn.execute("SELECT tally.counter_value(%s::text, %s::text)", (c.name, key)).fetchone()[0]
        assert got == c.totals[key], (c.name, key, got, c.totals[key])

    def check_all(self) -> None:
        """Every counter, key and bucket through the API, as the model says."""
        names_ = {r[0] for r in self.conn.execute("SELECT name FROM tally.counters").fetchall()}
        assert names_ == set(self.model), names_
        for c in self.model.values():
            for key in c.totals:
                self.check_value(c, key)
                for g in c.granularities:
                    rows = self.conn.execute(
                        "SELECT bucket, value FROM tally.counter_series(%s, %s, %s, '-infinity', 'infinity')",
                        (c.name, key, g),
                    ).fetchall()
                    assert rows == c.series(key, g), (c.name, key, g)
            top = self.conn.execute(
                "SELECT key, value FROM tally.top_keys(%s, 'all', NULL, 10000)", (c.name,)
            ).fetchall()
            assert top == sorted(c.totals.items(), key=lambda kv: (-kv[1], kv[0])), c.name


@pytest.fixture
def fuzz_conn(conn: psycopg.Connection) -> psycopg.Connection:
    # Keep every bucket forever, so the model needs no retention rule.
    for g in ("minute", "hour"):
        conn.execute("SELECT tally.set_retention(NULL, %s, NULL)", (g,))
    conn.execute("SET statement_timeout = '60s'")
    return conn


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(ops, min_size=1, max_size=12))
def test_every_call_succeeds_exactly_or_fails_cleanly(fuzz_conn: psycopg.Connection, calls: list[tuple]) -> None:
    run = Run(fuzz_conn)
    for op, *args in calls:
        getattr(run, op)(*args)
    run.check_all()  # pending deltas included
    fuzz_conn.execute("CALL tally.compact()")
    assert fuzz_conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    assert fuzz_conn.execute("SELECT count(*) FROM tally.quarantine").fetchone()[0] == 0
    run.check_all()  # folded


def test_an_oversized_batch_is_refused_whole(fuzz_conn: psycopg.Connection) -> None:
    run = Run(fuzz_conn)
    n = BATCH_LIMIT + 1
    run.incs(["fz_fast"] * n, ["k"] * n, [1] * n, None, None)
    run.incs(["fz_fast"] * (n - 2) + ["nope"], ["k"] * (n - 1), [1] * (n - 1), None, None)  # the last is bad
    assert fuzz_conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0


def test_overflowing_sums_are_accepted_then_quarantined_at_fold(fuzz_conn: psycopg.Connection) -> None:
    """Each delta is a valid bigint, so the write is accepted; a fold whose
    sum would overflow sets that key's deltas aside (tally.quarantined,
    tally.health) and folds everything else exactly."""
    Run(fuzz_conn)
    applied = fuzz_conn.execute(
        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[])",
        (
            ["fz_fast", "fz_fast", "fz_fast", "fz_durable"],
            ["poison", "poison", "fine", "fine"],
            [INT64_MAX, INT64_MAX, 5, 6],
        ),
    ).fetchone()[0]
    assert applied == 4
    assert fuzz_conn.execute("SELECT tally.increment_counter('fz_fast', 'low', %s::bigint)", (INT64_MIN,)).fetchone()[0]
    fuzz_conn.execute("CALL tally.compact()")
    quarantined = fuzz_conn.execute("SELECT counter, key, deltas, delta_sum FROM tally.quarantined").fetchall()
    assert quarantined == [("fz_fast", "poison", 2, 2 * INT64_MAX)]
    assert fuzz_conn.execute("""SELECT status FROM tally.health WHERE "check" = 'quarantine'""").fetchone()[0] == "warn"
    assert fuzz_conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    values = fuzz_conn.execute(
        "SELECT tally.counter_value('fz_fast', 'poison'), tally.counter_value('fz_fast', 'fine'),"
        " tally.counter_value('fz_durable', 'fine'), tally.counter_value('fz_fast', 'low')"
    ).fetchone()
    assert values == (0, 5, 6, INT64_MIN)
    # The fold is not wedged: what comes next folds.
    assert fuzz_conn.execute("SELECT tally.increment_counter('fz_fast', 'fine', 1)").fetchone()[0]
    fuzz_conn.execute("CALL tally.compact()")
    assert fuzz_conn.execute("SELECT tally.counter_value('fz_fast', 'fine')").fetchone()[0] == 6
    assert fuzz_conn.execute("SELECT count(*) FROM tally.quarantine").fetchone()[0] == 2


@pytest.mark.parametrize(
    "read",
    [
        "SELECT tally.counter_value('fz_fast', 'poison')",
        "SELECT * FROM tally.counter_series('fz_fast', 'poison', 'day', '-infinity', 'infinity')",
    ],
    ids=["counter_value", "counter_series"],
)
def test_reading_an_overflowing_pending_sum_fails_cleanly(fuzz_conn: psycopg.Connection, read: str) -> None:
    Run(fuzz_conn)
    fuzz_conn.execute(
        "SELECT tally.increment_counters('{fz_fast,fz_fast}', '{poison,poison}', %s::bigint[])", ([INT64_MAX] * 2,)
    )
    fn = read.split("tally.")[1].split("(")[0]
    with pytest.raises(psycopg.Error) as raised:
        fuzz_conn.execute(read).fetchall()
    assert raised.value.diag.message_primary.startswith(f"tally.{fn}:"), raised.value.diag.message_primary
    assert raised.value.sqlstate == "22003" and raised.value.diag.message_hint


def test_a_many_key_read_leaves_an_overflowing_key_out_with_a_warning(fuzz_conn: psycopg.Connection) -> None:
    Run(fuzz_conn)
    fuzz_conn.execute(
        "SELECT tally.increment_counters('{fz_fast,fz_fast,fz_fast}', '{poison,poison,ok}', %s::bigint[])",
        ([INT64_MAX, INT64_MAX, 3],),
    )
    # a Diagnostic is valid only inside the handler: keep what it says
    warnings: list[tuple[str | None, str | None, str | None]] = []
    fuzz_conn.add_notice_handler(
        lambda d: warnings.append((d.severity_nonlocalized, d.message_primary, d.message_hint))
    )
    assert fuzz_conn.execute("SELECT * FROM tally.top_keys('fz_fast', 'all', NULL)").fetchall() == [("ok", 3)]
    assert [w[:2] for w in warnings] == [
        (
            "WARNING",
            'tally.top_keys: key "poison" of counter "fz_fast" left out: its value (18446744073709551614) is out of '
            "the bigint range",
        )
    ]
    assert warnings[0][2]
