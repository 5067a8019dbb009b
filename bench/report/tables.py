"""What `make bench` prints: a line as each case finishes, then the tables,
the hot-path ratios and the targets."""

from __future__ import annotations

from bench.plan import Plan
from bench.report import say
from bench.report.targets import print_targets, thresholds


def header(res: dict, plan: Plan, quick: bool, only: str | None) -> None:
    env = res["environment"]
    where = f"{env['cores']} cores, PostgreSQL {env['postgres']}"
    name = f"tally bench{' --only ' + only if only else ''}{' --quick' if quick else ''}"
    if only == "client":
        say(f"{name}: {plan.client_threads} threads, {plan.client_seconds:g} s per case, {where}")
    else:
        say(f"{name}: {plan.clients} clients, {plan.seconds} s per case, {where}")


def step(title: str) -> None:
    say(f"\n{title}")


# -- a line per case as it finishes ------------------------------------------------------
def single_line(r: dict) -> None:
    if "skipped" in r:  # a Redis case
        say(f"  {r['label']:<36} skipped: redis-server / redis-benchmark not installed")
    elif "requests" in r:  # a Redis case
        say(f"  {r['label']:<36} {r['tps']:>10,.0f} increments/s  (stored {r['stored']:,})")
    else:
        say(
            f"  {r['label']:<36} {r['tps']:>10,.0f} increments/s"
            f"  (stored {r['stored']:,} of {r['transactions']:,} committed)"
        )


def hot_round_line(i: int, tps: dict[str, int]) -> None:
    say(f"  round {i}: " + ", ".join(f"{k} {v:,}/s" for k, v in tps.items()))


def batch_line(b: dict) -> None:
    say(f"  {b['label']:<36} {b['increments_per_s']:>10,.0f} increments/s  ({b['calls_per_s']:,.1f} calls/s)")


def fold_line(f: dict) -> None:
    say(
        f"  fold rate, {f['case']:<25} {f['deltas']:>10,} deltas in {f['seconds']:6.2f} s"
        f" = {f['deltas_per_s']:>10,.0f} deltas/s"
    )


def plain_compactors_line(r: dict) -> None:
    one, two = r["one"], r["two"]
    say(
        f"  {r['deltas']:,} deltas over {r['keys']:,} keys: 1 plain compactor {one['deltas_per_s']:,} deltas/s,"
        f" 2 plain compactors {two['deltas_per_s']:,} deltas/s = {r['ratio']:.2f}x"
        f" (compactor cores used {one['compactor_cores']} / {two['compactor_cores']})"
    )


def sustained_line(r: dict) -> None:
    say(
        f"  {r['keys']:>9,} keys: in {r['in_per_s']:,}/s, folded {r['folded_per_s']:,}/s while writing"
        f" ({r['fold_ratio']}x), backlog {r['backlog_end']:,} at the end (peak {r['backlog_peak']:,}),"
        f" the rest folded in {r['drain_s']:.0f} s; exact {r['exact']}"
    )


def lag_line(r: dict) -> None:
    say(
        f"  lag under max ingest: {r['ingest_per_s']:,.0f} increments/s with the compactor running; lag p50 "
        f"{r['lag_p50_s']:.2f} s, p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s"
    )


def history_line(r: dict) -> None:
    say(
        f"  history {r['events']:>11,}: counter_value p50 {r['counter_value_ms']['p50']:.3f} ms"
        f" p99 {r['counter_value_ms']['p99']:.3f} ms | count(*) p50 {r['count_star_ms']['p50']:,.1f} ms"
        f" p99 {r['count_star_ms']['p99']:,.1f} ms"
    )
    say(
        f"  {'':>19} counter_window 7 days p50 {r['counter_window_ms']['p50']:.3f} ms"
        f" | count(*) of those days p50 {r['count_window_ms']['p50']:,.1f} ms"
        f" | counter_values 100 keys p50 {r['counter_values_ms']['p50']:.3f} ms"
        f" | 100 counter_value calls p50 {r['counter_value_x100_ms']['p50']:.1f} ms"
    )


def client_line(c: dict) -> None:
    if "skipped" in c:
        why = "the redis package is not installed" if c["skipped"] == "redis-py not installed" else c["skipped"]
        say(f"  {c['label']:<40} skipped: {why}")
    else:
        say(f"  {c['label']:<40} {c['tps']:>10,} increments/s  (stored {c['stored']:,} of {c['calls']:,} acknowledged)")


# -- the tables at the end ----------------------------------------------------------------
def _x(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def single_table(res: dict) -> None:
    """The single increments beside the naive UPDATE, the raw INSERT and Redis;
    with the full run, the batch and the reads vs history too."""
    single = [r for r in res["single"] if "tps" in r]
    tps = {r["case"]: r["tps"] for r in single}
    naive, raw, redis = tps.get("naive_update"), tps.get("raw_unlogged_insert"), tps.get("redis_incr")
    say("")
    say(
        f"{'one increment per transaction, ' + str(res['environment']['plan']['clients']) + ' clients':<40}"
        f" {'incr/s':>10} {'÷ naive':>8} {'÷ raw':>8} {'÷ Redis':>8}  exact"
    )
    for r in single:
        say(
            f"{r['label']:<40} {r['tps']:>10,} {_x(r['tps'], naive):>8} {_x(r['tps'], raw):>8}"
            f" {_x(r['tps'], redis):>8}  {'yes' if r['exact'] else 'NO'}"
        )
    if tps.get("tally_event_id") and tps.get("tally_durable"):
        say(
            f"  with an event id at {_x(tps['tally_event_id'], tps['tally_durable'])} a durable increment,"
            f" {_x(tps['tally_event_id'], tps.get('tally_fast'))} a fast one"
        )
    if "batch" not in res:  # --only single
        return
    for b in (res["batch"], res.get("batch_event_ids")):
        if b is None:  # a result written before the case existed
            continue
        n = b["increments_per_s"]
        say(
            f"{b['label']:<40} {n:>10,} {_x(n, naive):>8} {_x(n, raw):>8} {_x(n, redis):>8}"
            f"  {'yes' if b['exact'] else 'NO'}"
        )
    if res.get("batch_event_ids"):
        say(
            f"  batches with event ids at"
            f" {_x(res['batch_event_ids']['increments_per_s'], res['batch']['increments_per_s'])}"
            " the rate of batches without"
        )
    say("")
    say(f"{'history (events)':<18} {'counter_value p50/p99 ms':>26} {'count(*) p50/p99 ms':>24}")
    for h in res["history"]:
        v, c = h["counter_value_ms"], h["count_star_ms"]
        say(f"{h['events']:<18,} {v['p50']:>12.3f} / {v['p99']:<11.3f} {c['p50']:>11,.1f} / {c['p99']:<10,.1f}")


def hot_path(res: dict) -> None:
    """The two hot-path ratios of this run (median of the interleaved rounds), and where the ceiling is."""
    hot = res["hot"]
    h = hot["ratios"]
    limits = thresholds()["single"]
    say("")
    say(
        f"hot path, tally.increment_counter (fast), median of {len(hot['rounds'])} interleaved round(s):"
        f" {h['fast_vs_naive']:.2f}x the naive UPDATE (target >= {limits['fast_vs_naive']['bound']:g}x),"
        f" {h['fast_vs_raw_insert']:.2f}x the raw unlogged INSERT"
        f" (target >= {limits['fast_vs_raw_insert']['bound']:.2f}x)"
    )
    say(
        f"  ceiling (definer fn, generation lookup + INSERT): {h['ceiling_vs_naive']:.2f}x naive,"
        f" {h['ceiling_vs_raw_insert']:.2f}x raw; increment_counter reaches {h['fast_vs_ceiling']:.2f}x of it"
    )


def client_table(client: dict) -> None:
    tps = {c["case"]: c.get("tps") for c in client["cases"]}
    say("")
    say(
        f"{'Python client, ' + str(client['threads']) + ' threads of one process':<40}"
        f" {'incr/s':>10} {'÷ plain':>8} {'÷ redis-py':>10}  exact"
    )
    for c in client["cases"]:
        if "tps" not in c:
            say(f"{c['label']:<40} {'skipped':>10}")
            continue
        batch = f"  (mean batch {c['group_commit']['mean_batch']})" if "group_commit" in c else ""
        say(
            f"{c['label']:<40} {c['tps']:>10,} {_x(c['tps'], tps.get('plain')):>8}"
            f" {_x(c['tps'], tps.get('redis')):>10}  {'yes' if c['exact'] else 'NO'}{batch}"
        )


def targets(res: dict) -> None:
    say("")
    print_targets(res["targets"])


def full(res: dict) -> None:
    """Everything `make bench` prints at the end."""
    single_table(res)
    hot_path(res)
    client_table(res["client"])
    targets(res)


def only(res: dict) -> None:
    """What `--only single` or `--only client` prints at the end."""
    if "single" in res:
        single_table(res)
        hot_path(res)
    else:
        client_table(res["client"])
    targets(res)


def tracked_lines(r: dict) -> None:
    for i, rnd in enumerate(r["rounds"]):
        say(
            f"  round {i + 1}: single-row INSERTs, one hot key, {r['clients']} clients:"
            f" untracked {rnd['untracked']:,}/s, tracked {rnd['tracked']:,}/s, counter-cache {rnd['counter_cache']:,}/s"
        )
    say(
        f"  tracked vs untracked {r['tracked_vs_untracked']:.2f}x, vs the counter-cache trigger"
        f" {r['tracked_vs_counter_cache']:.2f}x (medians of the rounds)"
    )
    b = r["bulk"]
    say(
        f"  one {b['rows']:,}-row INSERT ... SELECT over {b['keys']} keys: {b['deltas']} deltas appended;"
        f" {b['tracked_s']:.3f} s tracked vs {b['untracked_s']:.3f} s untracked"
    )
    for d in r["deadlocks"]:
        say(
            f"  {d['kind']}: {d['threads']} sessions, 10-row INSERTs in random key orders for {d['seconds']:.0f} s:"
            f" {d['statements']:,} statements, {d['deadlocks']} deadlocks"
        )
    say(f"  every counter equals its table's COUNT(*): {r['exact']}")
