-- tally._fold_step: one step of the compactor, in the caller's transaction,
-- under the fold lock (folds are serialized: one fold writes rollups at a
-- time, so two folds never wait on each other's rows).
--
-- Writers append to the active generation of delta shards; a step works on
-- the other, inactive one, and does the first of these that applies:
--   1. fold    the smallest inactive shard holding deltas gives up one chunk
--              of up to p_limit deltas (tally._fold_chunk);
--   2. reclaim drained inactive shards nobody can see into are TRUNCATEd
--              (tally._reclaim_shards);
--   3. flip    the inactive generation is empty: the generations flip (when
--              the flip counter is still <= p_flip_until, or always when it
--              is NULL); otherwise the step reports 'idle'.
-- They also flip ('rotated') instead of folding when the active generation
-- is older than p_max_gen_age while the inactive one still holds a backlog
-- (a large backfill): live increments do not wait behind it, and it keeps
-- draining whenever its generation is inactive.
CREATE OR REPLACE FUNCTION tally._fold_step(
    p_limit integer,
    p_flip_until bigint DEFAULT NULL,
    p_attempt integer DEFAULT 1,
    p_max_gen_age interval DEFAULT NULL
)
RETURNS TABLE (action text, folded bigint, flips bigint, shard text, mode text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_gen tally.write_gen;
    v_rel regclass;
    v_found boolean := false;
    v_rotate boolean;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tally._fold_step: limit % must be a positive number of deltas', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'the default is 100000';
    END IF;
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    SELECT w.* INTO v_gen FROM tally.write_gen AS w;

    -- the smallest inactive shard holding deltas (live stragglers before a
    -- backfill's backlog)
    FOR v_rel IN
        SELECT s.shard_table FROM tally.shards AS s
        WHERE s.gen = 1 - v_gen.gen
        ORDER BY pg_relation_size(s.shard_table), s.shard_table::text
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
        EXIT WHEN v_found;
    END LOOP;
    -- a backlog must not hold live increments back longer than p_max_gen_age
    v_rotate := v_found AND p_max_gen_age IS NOT NULL AND v_gen.flipped_at < now() - p_max_gen_age
                AND (p_flip_until IS NULL OR v_gen.flips <= p_flip_until);

    IF v_found AND NOT v_rotate THEN
        RETURN QUERY SELECT f.action, f.folded, v_gen.flips, v_rel::text, f.mode
                     FROM tally._fold_chunk(v_rel, p_limit, p_attempt, v_started) AS f;
        RETURN;
    END IF;
    IF NOT v_rotate THEN
        PERFORM tally._reclaim_shards((1 - v_gen.gen)::smallint, p_attempt, v_started);
    END IF;
    IF p_flip_until IS NULL OR v_gen.flips <= p_flip_until THEN
        UPDATE tally.write_gen AS w
        SET gen = 1 - w.gen, flips = w.flips + 1, flipped_at = now()
        RETURNING w.* INTO v_gen;
        RETURN QUERY SELECT CASE WHEN v_rotate THEN 'rotated' ELSE 'flipped' END,
                            0::bigint, v_gen.flips, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'idle'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._fold_step(integer, bigint, integer, interval) IS
'Internal: one compactor step under the fold lock: fold a chunk of an inactive delta shard, '
'reclaim drained ones by TRUNCATE, or flip.';
