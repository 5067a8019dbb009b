-- tally._next_shard: the shard of generation p_gen to fold next for slice
-- p_slice of p_slices (1: every key): the smallest one holding deltas of the
-- slice (live stragglers before a backfill's backlog), or NULL.
CREATE OR REPLACE FUNCTION tally._next_shard(p_gen smallint, p_slice integer, p_slices integer)
RETURNS regclass
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass;
    v_found boolean;
BEGIN
    FOR v_rel IN
        SELECT s.shard_table FROM tally.shards AS s
        WHERE s.gen = p_gen
        ORDER BY pg_relation_size(s.shard_table), s.shard_table::text
    LOOP
        IF p_slices = 1 THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
        ELSE
            EXECUTE format('SELECT EXISTS (SELECT FROM %s AS d WHERE tally._slice(d.counter_id, d.key, $2) = $1)', v_rel)
            INTO v_found USING p_slice, p_slices;
        END IF;
        IF v_found THEN
            RETURN v_rel;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION tally._next_shard(smallint, integer, integer) IS
'Internal: the smallest delta shard of a generation holding deltas of a slice, or NULL.';
