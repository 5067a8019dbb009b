-- tally._fold_chunk: fold one chunk of up to p_limit deltas of shard p_rel
-- (inactive, under the fold lock held by tally._fold_step): DELETE them
-- (MVCC-safe) RETURNING them, pre-aggregate per (counter, key, minute) and
-- add them to the total and every granularity (tally._apply_batch), all in
-- the caller's transaction: a delta is either pending or folded, never both,
-- never neither. A shard left empty is marked drained by this transaction.
--
-- The chunk is fixed first (its row ids, resuming where the last chunk of
-- the shard stopped: a TID range scan, so a backlog drained in chunks is not
-- rescanned from its dead head). If folding it would overflow bigint
-- (poison: a total, a minute or a bucket out of range), the chunk is rolled
-- back to a savepoint and the deltas of the offending (counter, key) pairs
-- IN THAT CHUNK are set aside (tally._quarantine_overflow, which checks the
-- very same rows), so the next step folds the rest: whatever deltas a writer
-- sends, nothing else ever waits behind them.
--
-- With p_slices > 1 the chunk holds only deltas of slice p_slice
-- (tally._slice), folded while other slices fold theirs: its place in the
-- shard and the transaction that deleted from it are kept in the slice's
-- own row of tally.shard_slices (tally.shards is left alone, so slice folds
-- never wait on each other there), and the reclaim waits for that
-- transaction too. The pre-aggregated batch goes through a temporary table
-- of this session (pg_temp.tally_fold_batch), emptied at commit, written in
-- (counter, key, minute) order and indexed so: each of the upserts that
-- follow reads it in that order instead of sorting it again (at a million
-- deltas over a million keys, six sorts of 600,000 rows). JIT is off: a
-- large chunk's estimates pass jit_above_cost, and compiling its statements
-- cost more than it saved.
CREATE OR REPLACE FUNCTION tally._fold_chunk(
    p_rel regclass, p_limit integer, p_attempt integer, p_started timestamptz,
    p_slice integer DEFAULT 0, p_slices integer DEFAULT 1
)
RETURNS TABLE (action text, folded bigint, mode text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET work_mem = '64MB'
SET jit = off
AS $$
DECLARE
    v_resume tid;
    v_batch regclass;
    v_slice text := CASE WHEN p_slices > 1
                         THEN format('tally._slice(s.counter_id, s.key, %s) = %s', p_slices, p_slice)
                         ELSE 'true' END;
    v_chunk tid[];
    v_folded bigint;
    v_last tid;
    v_poison bigint;
    v_left boolean;
    v_seqscan text := current_setting('enable_seqscan');
BEGIN
    IF p_slices > 1 THEN
        v_resume := coalesce((SELECT x.resume_at FROM tally.shard_slices AS x
                              WHERE x.shard_table = p_rel AND x.slices = p_slices AND x.slice = p_slice), '(0,0)');
    ELSE
        v_resume := (SELECT s.resume_at FROM tally.shards AS s WHERE s.shard_table = p_rel);
    END IF;
    v_batch := to_regclass('pg_temp.tally_fold_batch');
    IF v_batch IS NULL THEN
        CREATE TEMPORARY TABLE tally_fold_batch (
            counter_id integer NOT NULL,
            key text NOT NULL,
            minute timestamptz NOT NULL,
            delta bigint NOT NULL,
            n bigint NOT NULL
        ) ON COMMIT DELETE ROWS;
        CREATE INDEX ON pg_temp.tally_fold_batch (counter_id, key, minute);
        v_batch := to_regclass('pg_temp.tally_fold_batch');
    END IF;
    EXECUTE format('SELECT ARRAY(SELECT s.ctid FROM %s AS s WHERE s.ctid >= $2 AND %s LIMIT $1)', p_rel, v_slice)
    INTO v_chunk USING p_limit, v_resume;
    IF cardinality(v_chunk) = 0 THEN
        -- everything left lies before the resume point: start over
        v_resume := '(0,0)';
        EXECUTE format('SELECT ARRAY(SELECT s.ctid FROM %s AS s WHERE %s LIMIT $1)', p_rel, v_slice)
        INTO v_chunk USING p_limit;
    END IF;
    BEGIN
        -- A TID scan of the chunk, not a sequential scan of the shard: the
        -- planner costs each of the chunk's row ids as a random page read of
        -- its own (a 100,000-row chunk then outweighs a scan of millions of
        -- rows), so it would read the whole shard for every chunk and a
        -- backlog would cost the square of its size. Sequential scans are
        -- off for this statement only (an overflow in it rolls the setting
        -- back with the block).
        PERFORM set_config('enable_seqscan', 'off', true);
        EXECUTE format(
            'WITH moved AS (
                 DELETE FROM %1$s AS d WHERE d.ctid = ANY ($1)
                 RETURNING d.ctid, d.counter_id, d.key, d.delta, d.at),
             batch AS (
                 INSERT INTO %2$s (counter_id, key, minute, delta, n)
                 SELECT m.counter_id, m.key, tally._local_minute(m.at, z.time_zone), sum(m.delta), count(*)
                 FROM moved AS m
                 LEFT JOIN tally.counters AS z ON z.id = m.counter_id
                 GROUP BY 1, 2, 3
                 ORDER BY 1, 2, 3)
             SELECT count(*), max(m.ctid) FROM moved AS m', p_rel, v_batch)
        INTO v_folded, v_last
        USING v_chunk;
        PERFORM set_config('enable_seqscan', v_seqscan, true);
        PERFORM tally._apply_batch(v_batch);
    EXCEPTION WHEN numeric_value_out_of_range THEN
        v_poison := tally._quarantine_overflow(p_rel, v_chunk);
        IF v_poison = 0 THEN
            RAISE;
        END IF;
        IF p_slices > 1 THEN
            INSERT INTO tally.shard_slices AS x (shard_table, slices, slice, deleted_xid)
            VALUES (p_rel, p_slices, p_slice, pg_current_xact_id())
            ON CONFLICT (shard_table, slices, slice) DO UPDATE SET deleted_xid = excluded.deleted_xid;
        END IF;
        INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode, error, slice, slices)
        VALUES (p_started, v_poison, p_attempt, 'ok', p_rel::text, 'quarantine',
                format('%s deltas set aside: folding them would overflow bigint (see tally.quarantined)', v_poison),
                CASE WHEN p_slices > 1 THEN p_slice END, CASE WHEN p_slices > 1 THEN p_slices END);
        RETURN QUERY SELECT 'quarantined'::text, v_poison, NULL::text;
        RETURN;
    END;
    IF p_slices > 1 THEN
        -- the shard is drained when no delta of any slice is left: the
        -- reclaim checks that under its lock, after every slice's last
        -- deleting transaction (deleted_xid) is invisible to all
        INSERT INTO tally.shard_slices AS x (shard_table, slices, slice, resume_at, deleted_xid)
        VALUES (p_rel, p_slices, p_slice, CASE WHEN v_folded < p_limit THEN '(0,0)'::tid ELSE v_last END,
                pg_current_xact_id())
        ON CONFLICT (shard_table, slices, slice)
        DO UPDATE SET resume_at = excluded.resume_at, deleted_xid = excluded.deleted_xid;
    ELSE
        UPDATE tally.shards AS s
        SET resume_at = CASE WHEN v_folded < p_limit THEN '(0,0)'::tid ELSE v_last END
        WHERE s.shard_table = p_rel;
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', p_rel) INTO v_left;
        IF NOT v_left THEN
            UPDATE tally.shards AS s SET drained_xid = pg_current_xact_id(), drained_at = now()
            WHERE s.shard_table = p_rel;
        END IF;
    END IF;
    INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode, slice, slices)
    VALUES (p_started, v_folded, p_attempt, 'ok', p_rel::text, 'delete',
            CASE WHEN p_slices > 1 THEN p_slice END, CASE WHEN p_slices > 1 THEN p_slices END);
    RETURN QUERY SELECT 'folded'::text, v_folded, 'delete'::text;
END;
$$;

COMMENT ON FUNCTION tally._fold_chunk(regclass, integer, integer, timestamptz, integer, integer) IS
'Internal: fold one chunk of a delta shard (of one slice) into totals and rollups; '
'set aside (quarantine) the pairs of the chunk that would overflow.';
