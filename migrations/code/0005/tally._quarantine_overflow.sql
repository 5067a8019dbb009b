-- tally._quarantine_overflow: after folding the chunk p_chunk (row ids) of
-- shard p_shard failed with a bigint overflow, find the (counter, key) pairs
-- whose deltas in that chunk would overflow, on their own or added to what
-- is folded already: the pair's sum (the total), a minute's sum, or a
-- bucket's sum of any granularity. Move those deltas of the chunk to
-- tally.quarantine, where tally.health and tally.quarantined show them.
-- These are exactly the sums the fold computes, over exactly the rows it
-- folds, so the next try of the chunk cannot overflow on them again.
-- Returns how many deltas were set aside (0: the overflow was not theirs).
CREATE OR REPLACE FUNCTION tally._quarantine_overflow(p_shard regclass, p_chunk tid[])
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
        'SELECT c.counter_id, c.key FROM chunk AS c
         LEFT JOIN tally.%1$I AS r
             ON r.counter_id = c.counter_id AND r.key = c.key AND r.bucket = date_trunc(%2$L, c.at)
         GROUP BY c.counter_id, c.key, date_trunc(%2$L, c.at), r.value
         HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
             OR coalesce(r.value, 0) + sum(c.delta::numeric) NOT BETWEEN $1 AND $2',
        'rollup_' || g.name, g.name), ' UNION ' ORDER BY g.ord)
    INTO v_buckets
    FROM tally.granularities AS g;
    EXECUTE format(
        'WITH chunk AS MATERIALIZED (
             SELECT d.counter_id, d.key, d.delta, d.at FROM %1$s AS d WHERE d.ctid = ANY ($3)),
         poison AS (
             SELECT c.counter_id, c.key FROM chunk AS c
             LEFT JOIN tally.totals AS t ON t.counter_id = c.counter_id AND t.key = c.key
             GROUP BY c.counter_id, c.key, t.value
             HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
                 OR coalesce(t.value, 0) + sum(c.delta::numeric) NOT BETWEEN $1 AND $2
             UNION
             SELECT c.counter_id, c.key FROM chunk AS c
             GROUP BY c.counter_id, c.key, date_trunc(''minute'', c.at)
             HAVING sum(c.delta::numeric) NOT BETWEEN $1 AND $2
             UNION %2$s),
         moved AS (
             DELETE FROM %1$s AS d
             WHERE d.ctid = ANY ($3) AND (d.counter_id, d.key) IN (SELECT p.counter_id, p.key FROM poison AS p)
             RETURNING d.counter_id, d.key, d.delta, d.at, d.written_at)
         INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
         SELECT m.counter_id, m.key, m.delta, m.at, m.written_at,
                ''folding this key would overflow bigint (its total, a minute or a bucket)''
         FROM moved AS m', p_shard, v_buckets)
    USING -9223372036854775808::numeric, 9223372036854775807::numeric, p_chunk;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
END;
$$;

COMMENT ON FUNCTION tally._quarantine_overflow(regclass, tid[]) IS
'Internal: move the deltas of a fold chunk whose fold would overflow bigint to tally.quarantine; returns how many.';
