-- tally._quarantine_overflow: after a fold of shard p_shard failed with a
-- bigint overflow, find the (counter, key) pairs whose pending deltas there
-- would overflow the total, a minute, or a bucket of any granularity, and
-- move all their deltas in that shard to tally.quarantine, where
-- tally.health and tally.quarantined show them. Returns how many deltas
-- were set aside (0: the overflow was not theirs).
CREATE OR REPLACE FUNCTION tally._quarantine_overflow(p_shard regclass)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_buckets text;
    v_moved bigint;
BEGIN
    SELECT string_agg(format(
        'SELECT d.counter_id, d.key FROM %1$s AS d
         LEFT JOIN tally.%2$I AS r
             ON r.counter_id = d.counter_id AND r.key = d.key AND r.bucket = date_trunc(%3$L, d.at)
         GROUP BY d.counter_id, d.key, date_trunc(%3$L, d.at), r.value
         HAVING coalesce(r.value, 0) + sum(d.delta::numeric) NOT BETWEEN $1 AND $2',
        p_shard, 'rollup_' || g.name, g.name), ' UNION ' ORDER BY g.ord)
    INTO v_buckets
    FROM tally.granularities AS g;
    EXECUTE format(
        'WITH poison AS (
             SELECT d.counter_id, d.key FROM %1$s AS d
             LEFT JOIN tally.totals AS t ON t.counter_id = d.counter_id AND t.key = d.key
             GROUP BY d.counter_id, d.key, t.value
             HAVING coalesce(t.value, 0) + sum(d.delta::numeric) NOT BETWEEN $1 AND $2
             UNION
             SELECT d.counter_id, d.key FROM %1$s AS d
             GROUP BY d.counter_id, d.key, date_trunc(''minute'', d.at)
             HAVING sum(d.delta::numeric) NOT BETWEEN $1 AND $2
             UNION %2$s),
         moved AS (
             DELETE FROM %1$s AS d
             WHERE (d.counter_id, d.key) IN (SELECT p.counter_id, p.key FROM poison AS p)
             RETURNING d.counter_id, d.key, d.delta, d.at, d.written_at)
         INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
         SELECT m.counter_id, m.key, m.delta, m.at, m.written_at,
                ''folding this key would overflow bigint (its total, a minute or a bucket)''
         FROM moved AS m', p_shard, v_buckets)
    USING -9223372036854775808::numeric, 9223372036854775807::numeric;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
END;
$$;

COMMENT ON FUNCTION tally._quarantine_overflow(regclass) IS
'Internal: move the deltas of a shard whose fold would overflow bigint to tally.quarantine; returns how many.';
