-- tally._fold_step: one step of the compactor, in the caller's transaction.
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
-- is older than p_max_gen_age and holds deltas while the inactive one still
-- holds a backlog (a large backfill): live increments do not wait behind
-- it, and it keeps draining whenever its generation is inactive. (With
-- nothing waiting in the active generation a rotation would gain nothing;
-- folding in slices, it would make every slice wait for the others.)
--
-- Slices: with p_slices = 1 (the default) a step folds any delta, under the
-- fold lock taken exclusive: one fold at a time. With p_slices > 1 it folds
-- only the deltas of slice p_slice (tally._slice: a hash of counter and
-- key), under the fold lock SHARED and the slice's own locks
-- (tally._lock_slice): compactors folding different slices run at once, and
-- since their deltas, totals and rollup rows are disjoint they never wait on
-- each other's rows. Reclaim and flip need the whole inactive generation
-- empty, so a step with nothing left in its slice takes the fold lock
-- exclusive: it reclaims and flips when every slice is drained, and reports
-- 'waiting' while any slice still holds deltas (the caller pauses; its
-- own are folded by its next step, beside the others, never alone here).
CREATE OR REPLACE FUNCTION tally._fold_step(
    p_limit integer,
    p_flip_until bigint DEFAULT NULL,
    p_attempt integer DEFAULT 1,
    p_max_gen_age interval DEFAULT NULL,
    p_slice integer DEFAULT 0,
    p_slices integer DEFAULT 1
)
RETURNS TABLE (action text, folded bigint, flips bigint, shard text, mode text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_started timestamptz;
    v_gen tally.write_gen;
    v_rel regclass;
    v_backlog boolean;
    v_rotate boolean;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tally._fold_step: limit % must be a positive number of deltas', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'the default is 1000000';
    END IF;
    PERFORM tally._check_slice('tally._fold_step', p_slice, p_slices);

    IF p_slices > 1 THEN
        -- A first look without locks: deltas of this slice in the inactive
        -- generation and no rotation due? Then fold them beside the other
        -- slices; otherwise take the fold lock exclusive, below.
        SELECT w.* INTO v_gen FROM tally.write_gen AS w;
        v_rel := tally._next_shard((1 - v_gen.gen)::smallint, p_slice, p_slices);
        IF v_rel IS NOT NULL
           AND NOT (p_max_gen_age IS NOT NULL AND v_gen.flipped_at < now() - p_max_gen_age
                    AND (p_flip_until IS NULL OR v_gen.flips <= p_flip_until)
                    AND tally._next_shard(v_gen.gen, 0, 1) IS NOT NULL) THEN
            PERFORM tally._lock_slice(p_slice, p_slices);
            v_started := clock_timestamp();
            SELECT w.* INTO v_gen FROM tally.write_gen AS w;  -- a flip may have committed meanwhile
            v_rel := tally._next_shard((1 - v_gen.gen)::smallint, p_slice, p_slices);
            IF v_rel IS NULL THEN
                RETURN QUERY SELECT 'waiting'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
                RETURN;
            END IF;
            RETURN QUERY SELECT f.action, f.folded, v_gen.flips, v_rel::text, f.mode
                         FROM tally._fold_chunk(v_rel, p_limit, p_attempt, v_started, p_slice, p_slices) AS f;
            RETURN;
        END IF;
    END IF;

    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    v_started := clock_timestamp();
    SELECT w.* INTO v_gen FROM tally.write_gen AS w;
    v_rel := tally._next_shard((1 - v_gen.gen)::smallint, p_slice, p_slices);
    v_backlog := v_rel IS NOT NULL
                 OR (p_slices > 1 AND tally._next_shard((1 - v_gen.gen)::smallint, 0, 1) IS NOT NULL);
    -- a backlog must not hold live increments back longer than p_max_gen_age
    v_rotate := v_backlog AND p_max_gen_age IS NOT NULL AND v_gen.flipped_at < now() - p_max_gen_age
                AND (p_flip_until IS NULL OR v_gen.flips <= p_flip_until)
                AND tally._next_shard(v_gen.gen, 0, 1) IS NOT NULL;

    IF v_rel IS NOT NULL AND NOT v_rotate AND p_slices > 1 THEN
        -- deltas of this slice arrived (or a flip made them inactive) since
        -- the first look: fold them beside the other slices, next step, not
        -- here, alone
        RETURN QUERY SELECT 'waiting'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF v_rel IS NOT NULL AND NOT v_rotate THEN
        RETURN QUERY SELECT f.action, f.folded, v_gen.flips, v_rel::text, f.mode
                     FROM tally._fold_chunk(v_rel, p_limit, p_attempt, v_started, p_slice, p_slices) AS f;
        RETURN;
    END IF;
    IF v_backlog AND NOT v_rotate THEN
        -- only other slices' deltas are left: their compactors fold them
        RETURN QUERY SELECT 'waiting'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF NOT v_rotate THEN
        PERFORM tally._reclaim_shards((1 - v_gen.gen)::smallint, p_attempt, v_started);
    END IF;
    IF p_flip_until IS NULL OR v_gen.flips <= p_flip_until THEN
        -- A flip that found the generation empty records it: every delta
        -- written to that generation before this flip is folded, and so is
        -- every increment acknowledged before the flip that made it
        -- inactive (flipped_at, the start of that flip's transaction: such
        -- an increment's statement ran before that flip committed, so it
        -- went to this generation or the other, found empty earlier).
        -- tally._detect_crash_reset reports fast increments lost since
        -- the older of the two generations' folded_before.
        UPDATE tally.write_gen AS w
        SET gen = 1 - w.gen, flips = w.flips + 1, flipped_at = now(),
            emptied_at_flip[2 - w.gen] = CASE WHEN v_rotate THEN w.emptied_at_flip[2 - w.gen] ELSE w.flips + 1 END,
            folded_before[2 - w.gen] = CASE WHEN v_rotate THEN w.folded_before[2 - w.gen] ELSE w.flipped_at END
        RETURNING w.* INTO v_gen;
        RETURN QUERY SELECT CASE WHEN v_rotate THEN 'rotated' ELSE 'flipped' END,
                            0::bigint, v_gen.flips, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'idle'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._fold_step(integer, bigint, integer, interval, integer, integer) IS
'Internal: one compactor step: fold a chunk of an inactive delta shard (of one slice, beside the other slices, '
'or of any key, alone), reclaim drained ones by TRUNCATE, or flip.';
