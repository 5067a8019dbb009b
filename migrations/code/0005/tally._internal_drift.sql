-- tally._internal_drift: where a counter's folded buckets of one key do not
-- add up. Each coarser granularity the counter keeps (hour, day, week, month)
-- is compared with the nearest finer one it keeps that tiles it (minute for
-- hour; hour, else minute, for day; day, else hour, else minute, for week and
-- month), and the all-time total with the months when they are kept forever.
-- Only coarser buckets wholly inside both granularities' retention and
-- after the finer one's complete_from (tally.coverage) are compared. Reads
-- folded rows only, one statement per pair: a fold updates every
-- granularity in one transaction, so a consistent counter shows no row here
-- at any moment.
CREATE OR REPLACE FUNCTION tally._internal_drift(p_counter_id integer, p_key text)
RETURNS TABLE (granularity text, bucket timestamptz, expected bigint, actual bigint, finer text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_pair record;
    v_grans text[] := (SELECT c.granularities FROM tally.counters AS c WHERE c.id = p_counter_id);
    v_cutoff timestamptz;
    v_from timestamptz;
BEGIN
    -- finest first: a repair rebuilds hours before the days made of them
    FOR v_pair IN
        SELECT q.c, q.f FROM (
            SELECT DISTINCT ON (p.c) p.c, p.f, g.ord
            FROM (VALUES ('hour', 'minute', 1), ('day', 'hour', 1), ('day', 'minute', 2),
                         ('week', 'day', 1), ('week', 'hour', 2), ('week', 'minute', 3),
                         ('month', 'day', 1), ('month', 'hour', 2), ('month', 'minute', 3)) AS p (c, f, pref)
            JOIN tally.granularities AS g ON g.name = p.c
            WHERE p.f = ANY (v_grans) AND p.c = ANY (v_grans)
            ORDER BY p.c, p.pref
        ) AS q
        ORDER BY q.ord
    LOOP
        -- finer data is complete from the latest of: its retention cutoff,
        -- its recorded coverage; the coarser bucket must also be kept
        v_cutoff := greatest(
            tally._cutoff(p_counter_id, v_pair.f),
            (SELECT cv.complete_from FROM tally.coverage AS cv
             WHERE cv.counter_id = p_counter_id AND cv.granularity = v_pair.f));
        -- the first coarser bucket wholly inside that
        v_from := CASE WHEN NOT isfinite(v_cutoff) OR date_trunc(v_pair.c, v_cutoff) = v_cutoff
                       THEN v_cutoff
                       ELSE date_trunc(v_pair.c, v_cutoff) + CASE v_pair.c WHEN 'week' THEN interval '7 days'
                                                                           ELSE ('1 ' || v_pair.c)::interval END
                  END;
        v_from := greatest(v_from, tally._cutoff(p_counter_id, v_pair.c));
        RETURN QUERY EXECUTE format(
            'WITH fine AS (
                 SELECT date_trunc(%3$L, f.bucket) AS b, sum(f.value)::bigint AS v
                 FROM tally.%1$I AS f
                 WHERE f.counter_id = $1 AND f.key = $2 AND f.bucket >= $3
                 GROUP BY 1),
             coarse AS (
                 SELECT r.bucket AS b, r.value AS v
                 FROM tally.%2$I AS r
                 WHERE r.counter_id = $1 AND r.key = $2 AND r.bucket >= $3)
             SELECT %3$L::text, coalesce(fine.b, coarse.b), fine.v, coarse.v, %4$L::text
             FROM fine FULL JOIN coarse ON fine.b = coarse.b
             WHERE fine.v IS DISTINCT FROM coarse.v
             ORDER BY 2',
            'rollup_' || v_pair.f, 'rollup_' || v_pair.c, v_pair.c, v_pair.f)
        USING p_counter_id, p_key, v_from;
    END LOOP;
    -- the all-time total against all months, when months are kept forever
    -- and have been from the start
    IF 'month' = ANY (v_grans) AND NOT isfinite(tally._cutoff(p_counter_id, 'month'))
       AND NOT EXISTS (SELECT FROM tally.coverage AS cv
                       WHERE cv.counter_id = p_counter_id AND cv.granularity = 'month' AND isfinite(cv.complete_from)) THEN
        RETURN QUERY
        SELECT 'all'::text, NULL::timestamptz, s.v, t.value, 'month'::text
        FROM (SELECT sum(m.value)::bigint AS v FROM tally.rollup_month AS m
              WHERE m.counter_id = p_counter_id AND m.key = p_key) AS s
        FULL JOIN (SELECT tt.value FROM tally.totals AS tt
                   WHERE tt.counter_id = p_counter_id AND tt.key = p_key) AS t ON true
        WHERE s.v IS DISTINCT FROM t.value;
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._internal_drift(integer, text) IS
'Internal: coarser buckets (and the total) of a key that differ from the sum of their finer buckets.';
