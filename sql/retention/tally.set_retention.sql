-- tally.set_retention: how long a counter keeps buckets of one granularity
-- (p_keep NULL: forever). With p_counter NULL it sets the default for every
-- counter without an override of its own. Buckets older than the retention
-- are hidden at once and their partitions dropped by tally.maintain() once
-- no counter keeps them; increments older than it still count in the total
-- and in the coarser granularities.
CREATE OR REPLACE FUNCTION tally.set_retention(p_counter text, p_granularity text, p_keep interval)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.set_retention';
    v_counter tally.counters;
    v_width interval;
BEGIN
    IF p_granularity IS NULL THEN
        RAISE EXCEPTION '%: granularity must not be NULL', c_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'use one of minute, hour, day, week, month (the all-time total is always kept)';
    END IF;
    IF NOT EXISTS (SELECT FROM tally.granularities AS g WHERE g.name = p_granularity) THEN
        RAISE EXCEPTION '%: unknown granularity "%"', c_fn, coalesce(p_granularity, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use one of minute, hour, day, week, month (the all-time total is always kept)';
    END IF;
    v_width := CASE p_granularity WHEN 'week' THEN interval '7 days' ELSE ('1 ' || p_granularity)::interval END;
    IF p_keep IS NOT NULL AND p_keep < v_width THEN
        RAISE EXCEPTION '%: retention % is shorter than one % bucket', c_fn, p_keep, p_granularity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'keep at least one bucket, or pass NULL to keep them forever';
    END IF;
    IF p_counter IS NULL THEN
        -- counters following the default: what they keep now is all they have
        PERFORM tally._note_coverage(c.id, p_granularity)
        FROM tally.counters AS c
        WHERE p_granularity = ANY (c.granularities)
          AND NOT EXISTS (SELECT FROM tally.retention AS r WHERE r.counter_id = c.id AND r.granularity = p_granularity);
        UPDATE tally.granularities AS g SET default_retention = p_keep WHERE g.name = p_granularity;
    ELSE
        v_counter := tally._lookup_counter(c_fn, p_counter);
        PERFORM tally._granularity(c_fn, v_counter, p_granularity);
        PERFORM tally._note_coverage(v_counter.id, p_granularity);
        INSERT INTO tally.retention AS r (counter_id, granularity, keep)
        VALUES (v_counter.id, p_granularity, p_keep)
        ON CONFLICT (counter_id, granularity) DO UPDATE SET keep = excluded.keep;
    END IF;
    PERFORM tally._sync_retention();
END;
$$;

COMMENT ON FUNCTION tally.set_retention(text, text, interval) IS
'Set how long a counter (or, with NULL, every counter by default) keeps buckets of a granularity; NULL keeps forever.';
