-- tally.health: one row per check, status ok / warn / critical and a
-- human reason, cheap enough to poll for alerts:
--   node       primary, or a hot standby (warn when it does not stream
--              from a primary); on a standby the compactor and lag checks
--              say so instead of alerting: the compactor runs on the primary
--   compactor  never run since install, or not running (no step for a
--              while) while deltas wait for it
--   lag        the oldest pending increment's age (warn 10 s, critical 60 s)
--   backlog    the backlog keeps growing: over the last 5 minutes of the
--              compactor's samples (tally.backlog_samples) its lowest in
--              the last 2 minutes is above its highest in the first, by
--              10,000 deltas or more; says how fast writers add and the
--              compactor folds. Writers slowed by tally.set_backlog_limits:
--              warn; refused: critical
--   folds      compactor steps that failed (after retries) in the last hour
--   maintenance the last maintenance run failed in part, or is overdue (a
--              compactor runs but maintenance has not for 2 hours), or the
--              event-id partition of today or tomorrow is missing
--   drift      the latest drift checks found inconsistencies or drift
--   crash      a crash reset (or a promotion) emptied the fast deltas (last
--              24 h, or now), until acknowledged (tally.acknowledge_crash)
--   quarantine deltas set aside because folding them would overflow
CREATE OR REPLACE VIEW tally.health AS
WITH node AS (
    SELECT n.* FROM tally.node_status() AS n
),

lag AS (
    SELECT
        coalesce(sum(p.deltas), 0)::bigint AS pending,
        extract(EPOCH FROM now() - min(p.oldest_written_at)) AS oldest_s
    FROM tally.pending_deltas() AS p
),

gen AS (
    SELECT
        extract(EPOCH FROM now() - w.flipped_at) AS since_flip_s,
        -- (SELECT 1: Citus 13.2 cannot plan an empty target list here)
        w.flips = 0 AND NOT EXISTS (
            SELECT 1 FROM tally.fold_runs AS r
            WHERE r.mode IS DISTINCT FROM 'maintenance')
            AS never_run
    FROM tally.write_gen AS w
),

trend AS (
    SELECT
        min(s.sampled_at) AS first_at,
        max(s.sampled_at) AS last_at,
        max(s.pending) FILTER (WHERE s.sampled_at < now() - interval '4 minutes') AS early_max,
        min(s.pending) FILTER (WHERE s.sampled_at >= now() - interval '2 minutes') AS late_min,
        (array_agg(s.pending ORDER BY s.sampled_at))[1] AS first_pending,
        (array_agg(s.pending ORDER BY s.sampled_at DESC))[1] AS last_pending
    FROM tally.backlog_samples AS s
    WHERE s.sampled_at >= now() - interval '5 minutes'
),

rates AS (
    SELECT
        t.*,
        t.late_min - t.early_max >= 10000 AS growing,
        greatest(extract(EPOCH FROM t.last_at - t.first_at), 1) AS span_s,
        (
            SELECT coalesce(sum(r.deltas), 0) FROM tally.fold_runs AS r
            WHERE r.finished_at > t.first_at AND r.finished_at <= t.last_at AND r.outcome <> 'failed'
        ) AS folded
    FROM trend AS t
),

admission AS (
    SELECT
        w.backlog_state AS state,
        w.backlog_pending AS pending,
        s.backlog_delay_at AS delay_at,
        s.backlog_refuse_at AS refuse_at
    FROM tally.write_gen AS w CROSS JOIN tally.settings AS s
),

failed AS (
    SELECT
        count(*) AS n,
        max(r.finished_at) AS last_at
    FROM tally.fold_runs AS r
    WHERE
        r.outcome = 'failed' AND r.mode IS DISTINCT FROM 'maintenance'
        AND r.finished_at > now() - interval '1 hour'
),

maint AS (
    SELECT
        (
            SELECT r FROM tally.fold_runs AS r
            WHERE r.mode = 'maintenance'
            ORDER BY r.id DESC LIMIT 1
        ) AS last_run,
        (SELECT b.installed_at FROM tally.install_baseline AS b) AS installed_at,
        (
            SELECT array_agg(d.day ORDER BY d.day)
            FROM (VALUES ((now() AT TIME ZONE 'UTC')::date), ((now() AT TIME ZONE 'UTC')::date + 1)) AS d (day)
            WHERE NOT EXISTS (
                SELECT FROM tally.event_days AS e
                INNER JOIN pg_catalog.pg_class AS c ON c.relname = 'event_ids_p' || to_char(e.day, 'YYYYMMDD')
                INNER JOIN pg_catalog.pg_inherits AS i ON c.oid = i.inhrelid
                WHERE
                    i.inhparent = 'tally.event_ids'::regclass
                    AND e.day <= d.day AND e.next_day > d.day
            )
        ) AS missing_days
),

due AS (
    SELECT
        m.*,
        coalesce((m.last_run).finished_at, m.installed_at) + interval '1 hour' AS due_at,
        -- a compactor steps (it flips at least once a call) yet maintenance
        -- has not run for an hour past its due time
        coalesce((m.last_run).finished_at, m.installed_at) < now() - interval '2 hours'
        AND (SELECT g.since_flip_s FROM gen AS g) < 600 AS overdue
    FROM maint AS m
),

drifted AS (
    SELECT
        count(*) FILTER (WHERE d.inconsistent_keys > 0) AS inconsistent,
        count(*) FILTER (WHERE d.drifting_keys > 0) AS drifting,
        string_agg(d.counter, ', ' ORDER BY d.counter)
        FILTER (WHERE d.inconsistent_keys > 0 OR d.drifting_keys > 0) AS counters
    FROM tally.drift AS d
),

crash AS (
    SELECT
        coalesce((SELECT n.unrecorded_crash FROM node AS n), FALSE) AS undetected,
        (
            SELECT max(cr.detected_at) FROM tally.crash_resets AS cr
            WHERE cr.detected_at > now() - interval '24 hours' AND cr.acknowledged_at IS NULL
        ) AS recent_at,
        (
            SELECT cr FROM tally.crash_resets AS cr
            ORDER BY cr.id DESC LIMIT 1
        ) AS latest,
        (
            SELECT cr FROM tally.crash_resets AS cr
            WHERE cr.detected_at > now() - interval '24 hours' AND cr.acknowledged_at IS NOT NULL
            ORDER BY cr.id DESC LIMIT 1
        ) AS acknowledged
),

poison AS (
    SELECT
        count(*) AS n,
        count(DISTINCT q.counter_id::text || '/' || q.key) AS n_keys
    FROM tally.quarantine AS q
)

SELECT
    'node'::text AS "check",
    CASE WHEN n.role = 'standby' AND NOT n.streaming THEN 'warn' ELSE 'ok' END AS status,
    CASE
        WHEN n.role = 'primary'
            THEN format('primary, %s streaming standbys', n.standbys)
        WHEN n.streaming
            THEN
                format(
                    'standby, streaming: reads are as of %s; they leave out fast counters'' pending deltas '
                    '(UNLOGGED, not replicated)', coalesce(n.replayed_at::text, 'its start')
                )
        ELSE format(
            'standby, not streaming from a primary: reads are as of %s and may be stale',
            coalesce(n.replayed_at::text, 'its start')
        )
    END AS reason
FROM node AS n
UNION ALL
SELECT
    'compactor' AS "check",
    -- Late only when something has waited for it: a delta written a moment
    -- ago on an idle database has had no chance to be folded yet.
    CASE
        WHEN n.role = 'standby' THEN 'ok'
        WHEN g.never_run AND (l.pending = 0 OR l.oldest_s < 60) THEN 'warn'
        WHEN g.never_run THEN 'critical'
        WHEN l.pending = 0 OR least(g.since_flip_s, l.oldest_s) < 10 THEN 'ok'
        WHEN least(g.since_flip_s, l.oldest_s) < 60 THEN 'warn'
        ELSE 'critical'
    END AS status,
    CASE
        WHEN n.role = 'standby'
            THEN
                format(
                    'standby: the compactor runs on the primary (see tally.health there); replicated here: '
                    '%s logged deltas pending', l.pending
                )
        WHEN g.never_run
            THEN
                format(
                    'never run: no compactor step since install (%s pending); schedule it with '
                    'tally.schedule_compactor() or run `tally compact --loop`', l.pending
                )
        WHEN l.pending = 0 THEN 'nothing pending'
        WHEN g.since_flip_s < 10 THEN format('running: last step %s s ago', round(g.since_flip_s::numeric, 1))
        WHEN l.oldest_s < 10
            THEN
                format(
                    'last step %s s ago; the oldest pending delta is %s s old',
                    round(g.since_flip_s::numeric), round(l.oldest_s::numeric, 1)
                )
        ELSE format(
            'not running: no compactor step for %s s, the oldest of %s pending deltas waits %s s',
            round(g.since_flip_s::numeric), l.pending, round(l.oldest_s::numeric)
        )
    END AS reason
FROM lag AS l CROSS JOIN gen AS g CROSS JOIN node AS n
UNION ALL
SELECT
    'lag' AS "check",
    CASE
        WHEN n.role = 'standby' OR coalesce(l.oldest_s, 0) < 10 THEN 'ok'
        WHEN l.oldest_s < 60 THEN 'warn'
        ELSE 'critical'
    END AS status,
    format(
        '%soldest pending increment: %s s (%s pending)',
        CASE WHEN n.role = 'standby' THEN 'standby, logged deltas only: ' ELSE '' END,
        round(coalesce(l.oldest_s, 0)::numeric, 1), l.pending
    ) AS reason
FROM lag AS l CROSS JOIN node AS n
UNION ALL
SELECT
    'backlog' AS "check",
    CASE
        WHEN a.state = 2 THEN 'critical'
        WHEN a.state = 1 OR coalesce(r.growing, FALSE) THEN 'warn'
        ELSE 'ok'
    END AS status,
    CASE
        WHEN a.state = 2
            THEN format(
                'writers refused: the backlog of %s deltas is over the limit of %s (tally.set_backlog_limits)',
                a.pending, a.refuse_at
            )
        WHEN a.state = 1
            THEN format(
                'writers slowed: the backlog of %s deltas is over the limit of %s (tally.set_backlog_limits)',
                a.pending, a.delay_at
            )
        WHEN r.last_at IS NULL THEN 'no backlog sample in the last 5 minutes (the compactor takes them)'
        WHEN coalesce(r.growing, FALSE)
            THEN
                format(
                    'the backlog grew from %s to %s deltas in %s s: writers add about %s/s, the compactor folds about %s/s;'
                    ' add compactors (more plain ones, or tally compact --loop --workers N) or slow the writers',
                    r.first_pending, r.last_pending, round(r.span_s),
                    round((r.folded + r.last_pending - r.first_pending) / r.span_s), round(r.folded / r.span_s)
                )
        ELSE format(
            'not growing: %s deltas pending (sampled %s s ago)',
            r.last_pending, round(extract(EPOCH FROM now() - r.last_at)::numeric)
        )
    END AS reason
FROM rates AS r CROSS JOIN admission AS a
UNION ALL
SELECT
    'folds' AS "check",
    CASE WHEN f.n = 0 THEN 'ok' ELSE 'critical' END AS status,
    CASE
        WHEN f.n = 0 THEN 'no fold abandoned in the last hour'
        ELSE format(
            '%s folds abandoned after retries in the last hour, last at %s: see tally.compactor_runs',
            f.n, f.last_at
        )
    END AS reason
FROM failed AS f
UNION ALL
SELECT
    'maintenance' AS "check",
    CASE
        WHEN m.missing_days IS NOT NULL THEN 'critical'
        WHEN (m.last_run).outcome = 'failed' THEN 'warn'
        WHEN m.overdue THEN 'warn'
        ELSE 'ok'
    END AS status,
    CASE
        WHEN m.missing_days IS NOT NULL
            THEN
                format(
                    'the event-id partition of %s is missing: increments with an event id fail; run tally.maintain()',
                    array_to_string(m.missing_days, ' and ')
                )
        WHEN (m.last_run).outcome = 'failed'
            THEN format('the last maintenance, at %s, failed in part: %s', (m.last_run).finished_at, (m.last_run).error)
        WHEN m.overdue
            THEN
                format(
                    'overdue: the compactor runs but maintenance has not since %s (due hourly): run '
                    'tally.maintain(), or schedule it (tally.schedule_compactor(); tally compact --loop runs it)',
                    coalesce((m.last_run).finished_at::text, format('install, at %s', m.installed_at))
                )
        WHEN (m.last_run).id IS NULL
            THEN
                format(
                    'not run yet; due by %s (a compactor loop runs it at its start, then hourly)',
                    m.installed_at + interval '1 hour'
                )
        ELSE format('last maintenance at %s: ok; next due by %s', (m.last_run).finished_at, m.due_at)
    END AS reason
FROM due AS m
UNION ALL
SELECT
    'drift' AS "check",
    CASE WHEN d.inconsistent + d.drifting = 0 THEN 'ok' ELSE 'warn' END AS status,
    CASE
        WHEN d.inconsistent + d.drifting = 0 THEN 'no drift in the latest checks'
        ELSE format('drift found in %s: see tally.drift, repair with tally.reconcile()', d.counters)
    END AS reason
FROM drifted AS d
UNION ALL
SELECT
    'crash' AS "check",
    CASE WHEN c.undetected OR c.recent_at IS NOT NULL THEN 'critical' ELSE 'ok' END AS status,
    CASE
        WHEN c.undetected
            THEN 'a crash reset (or a promotion) emptied the fast (unlogged) deltas; the next compactor step records it'
        WHEN c.recent_at IS NOT NULL
            THEN
                format(
                    '%s detected at %s: fast increments acknowledged from %s to %s and not folded were lost; '
                    'once reviewed, clear it with tally.acknowledge_crash()',
                    CASE (c.latest).cause WHEN 'promotion' THEN 'promotion' ELSE 'crash reset' END,
                    c.recent_at, coalesce((c.latest).lost_since::text, 'install'), (c.latest).lost_until
                )
        WHEN (c.acknowledged).id IS NOT NULL
            THEN
                format(
                    'crash reset detected at %s, acknowledged by %s at %s',
                    (c.acknowledged).detected_at, (c.acknowledged).acknowledged_by::text COLLATE "default",
                    (c.acknowledged).acknowledged_at
                )
        ELSE 'no crash reset in the last 24 hours'
    END AS reason
FROM crash AS c
UNION ALL
SELECT
    'quarantine' AS "check",
    CASE WHEN p.n = 0 THEN 'ok' ELSE 'warn' END AS status,
    CASE
        WHEN p.n = 0 THEN 'nothing quarantined'
        ELSE format(
            '%s deltas of %s keys set aside (they would overflow bigint): see tally.quarantined',
            p.n, p.n_keys
        )
    END AS reason
FROM poison AS p;

COMMENT ON VIEW tally.health IS
'One row per check (node, compactor, lag, backlog, folds, maintenance, drift, crash, quarantine): status and why.';
