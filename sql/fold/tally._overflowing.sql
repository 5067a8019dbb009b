-- tally._overflowing: the rule of poison, once for both modes. Of the
-- deltas in p_rows (a relation or subquery with counter_id, key, delta and
-- at), the (counter, key) pairs whose fold would leave the bigint range:
-- their sum, or their sum added to what is folded already, out of range for
-- the total, for a minute, or for a bucket of any granularity. These are the
-- very sums a fold computes over the very rows it folds, so once a fold has
-- set these pairs' deltas aside (tally.quarantine), the same rows cannot
-- overflow again.
--   one node:  the rows of the chunk whose fold overflowed
--              (tally._quarantine_overflow);
--   Citus:     tally.delta (every statement groups by the distribution
--              column: only the pairs leave the workers).
CREATE OR REPLACE FUNCTION tally._overflowing(p_rows text)
RETURNS TABLE (counter_id integer, key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_buckets text;
    -- each delta with its counter's time zone (UTC for a counter dropped
    -- meanwhile: its deltas are discarded anyway)
    v_rows text := format(
        '(SELECT x.counter_id, x.key, x.delta, x.at, coalesce(z.time_zone, ''UTC'') AS tz
          FROM %s AS x LEFT JOIN tally.counters AS z ON z.id = x.counter_id)', p_rows);
BEGIN
    SELECT string_agg(format(
        'SELECT c.counter_id, c.key FROM %3$s AS c
         LEFT JOIN tally.%1$I AS r
             ON r.counter_id = c.counter_id AND r.key = c.key AND r.bucket = date_trunc(%2$L, c.at, c.tz)
         GROUP BY c.counter_id, c.key, date_trunc(%2$L, c.at, c.tz), r.value
         HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
             OR coalesce(r.value, 0) + sum(c.delta::numeric) NOT BETWEEN $1 AND $2',
        'rollup_' || g.name, g.name, v_rows), ' UNION ' ORDER BY g.ord)
    INTO v_buckets
    FROM tally.granularities AS g;
    RETURN QUERY EXECUTE format(
        'SELECT c.counter_id, c.key FROM %1$s AS c
         LEFT JOIN tally.totals AS t ON t.counter_id = c.counter_id AND t.key = c.key
         GROUP BY c.counter_id, c.key, t.value
         HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
             OR coalesce(t.value, 0) + sum(c.delta::numeric) NOT BETWEEN $1 AND $2
         UNION
         SELECT c.counter_id, c.key FROM %1$s AS c
         GROUP BY c.counter_id, c.key, tally._local_minute(c.at, c.tz)
         HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
         UNION %2$s', v_rows, v_buckets)
    USING -9223372036854775808::numeric, 9223372036854775807::numeric;
END;
$$;

COMMENT ON FUNCTION tally._overflowing(text) IS
'Internal: the (counter, key) pairs of a set of deltas whose fold would overflow bigint (both modes).';
