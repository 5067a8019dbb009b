-- tally.health: one row per check, status ok / warn / critical and a
-- human reason, cheap enough to poll for alerts:
--   compactor  not running (no flip for a while) while deltas are pending
--   lag        the oldest pending increment's age (warn 10 s, critical 60 s)
--   folds      folds abandoned after retries in the last hour
--   drift      the latest drift checks found inconsistencies or drift
--   crash      a crash reset emptied the fast deltas (last 24 h, or now)
--   quarantine deltas set aside because folding them would overflow
CREATE OR REPLACE VIEW tally.health AS
WITH lag AS (
    SELECT
        count(*) AS pending,
        extract(EPOCH FROM now() - min(d.written_at)) AS oldest_s
    FROM tally.delta AS d
),

gen AS (
    SELECT extract(EPOCH FROM now() - w.flipped_at) AS since_flip_s FROM tally.write_gen AS w
),

failed AS (
    SELECT
        count(*) AS n,
        max(r.finished_at) AS last_at
    FROM tally.fold_runs AS r
    WHERE r.outcome = 'failed' AND r.finished_at > now() - interval '1 hour'
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
        NOT EXISTS (SELECT FROM tally.crash_marker) AS undetected,
        (
            SELECT max(cr.detected_at) FROM tally.crash_resets AS cr
            WHERE cr.detected_at > now() - interval '24 hours'
        ) AS recent_at,
        (
            SELECT cr.lost_since FROM tally.crash_resets AS cr
            ORDER BY cr.id DESC LIMIT 1
        ) AS lost_since
),

poison AS (
    SELECT
        count(*) AS n,
        count(DISTINCT q.counter_id::text || '/' || q.key) AS n_keys
    FROM tally.quarantine AS q
)

SELECT
    'compactor'::text AS "check",
    CASE
        WHEN l.pending = 0 OR g.since_flip_s < 10 THEN 'ok'
        WHEN g.since_flip_s < 60 THEN 'warn'
        ELSE 'critical'
    END AS status,
    CASE
        WHEN l.pending = 0 THEN 'nothing pending'
        WHEN g.since_flip_s < 10 THEN format('running: last step %s s ago', round(g.since_flip_s::numeric, 1))
        ELSE format(
            'not running: no compactor step for %s s with %s deltas pending',
            round(g.since_flip_s::numeric), l.pending
        )
    END AS reason
FROM lag AS l CROSS JOIN gen AS g
UNION ALL
SELECT
    'lag' AS "check",
    CASE WHEN coalesce(l.oldest_s, 0) < 10 THEN 'ok' WHEN l.oldest_s < 60 THEN 'warn' ELSE 'critical' END AS status,
    format('oldest pending increment: %s s (%s pending)', round(coalesce(l.oldest_s, 0)::numeric, 1), l.pending)
        AS reason
FROM lag AS l
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
        WHEN c.undetected THEN 'a crash reset emptied the fast (unlogged) deltas; the next compactor run records it'
        WHEN c.recent_at IS NOT NULL
            THEN
                format(
                    'crash reset detected at %s: fast increments written since %s and not folded were lost',
                    c.recent_at, coalesce(c.lost_since::text, 'install')
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
'One row per check (compactor, lag, folds, drift, crash, quarantine): status ok/warn/critical and why.';
