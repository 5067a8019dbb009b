-- tally._quarantine_overflow: after folding the chunk p_chunk (row ids) of
-- shard p_shard failed with a bigint overflow, set aside the deltas of that
-- chunk whose (counter, key) pair would overflow (tally._overflowing, over
-- exactly the chunk's rows, copied once into this session's
-- pg_temp.tally_fold_chunk): move them to tally.quarantine, where
-- tally.health and tally.quarantined show them. Returns how many deltas
-- were set aside (0: the overflow was not theirs).
CREATE OR REPLACE FUNCTION tally._quarantine_overflow(p_shard regclass, p_chunk tid[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_rows text := 'pg_temp.tally_fold_chunk';
    v_moved bigint;
BEGIN
    IF to_regclass(v_rows) IS NULL THEN
        CREATE TEMPORARY TABLE tally_fold_chunk (counter_id integer, key text, delta bigint, at timestamptz)
        ON COMMIT DROP;
    END IF;
    EXECUTE format('INSERT INTO %s SELECT d.counter_id, d.key, d.delta, d.at FROM %s AS d WHERE d.ctid = ANY ($1)',
                   v_rows, p_shard)
    USING p_chunk;
    EXECUTE format(
        'WITH moved AS (
             DELETE FROM %1$s AS d
             WHERE d.ctid = ANY ($1)
               AND (d.counter_id, d.key) IN (SELECT p.counter_id, p.key FROM tally._overflowing(%2$L) AS p)
             RETURNING d.counter_id, d.key, d.delta, d.at, d.written_at)
         INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
         SELECT m.counter_id, m.key, m.delta, m.at, m.written_at, tally._quarantine_reason()
         FROM moved AS m', p_shard, v_rows)
    USING p_chunk;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    EXECUTE format('DELETE FROM %s', v_rows);
    RETURN v_moved;
END;
$$;

COMMENT ON FUNCTION tally._quarantine_overflow(regclass, tid[]) IS
'Internal: move the deltas of a fold chunk whose fold would overflow bigint to tally.quarantine; returns how many.';
