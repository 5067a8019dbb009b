-- tally._reclaim_shards: TRUNCATE each shard of generation p_gen (inactive,
-- under the fold lock, exclusive) whose last deleting transaction -- the
-- one that drained it (tally.shards.drained_xid) or, folded in slices, the
-- last one of each slice (tally.shard_slices.deleted_xid), whichever is
-- newest -- every snapshot in the cluster already sees as committed
-- (tally._invisible_to_all), and that
-- can be locked within 50 ms and holds no visible row under that lock: its
-- dead rows are invisible to everyone, so truncating is unobservable, and no
-- VACUUM is needed. A busy shard is left for a later step. Returns how many
-- shards it truncated.
CREATE OR REPLACE FUNCTION tally._reclaim_shards(p_gen smallint, p_attempt integer, p_started timestamptz)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lock_timeout text := current_setting('lock_timeout');
    v_rel regclass;
    v_found boolean;
    v_truncated integer := 0;
BEGIN
    FOR v_rel IN
        SELECT s.shard_table FROM tally.shards AS s
        WHERE s.gen = p_gen
          AND tally._invisible_to_all(greatest(
              s.drained_xid,
              (SELECT max(x.deleted_xid) FROM tally.shard_slices AS x WHERE x.shard_table = s.shard_table)))
        ORDER BY s.shard_table::text
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rel);
            PERFORM set_config('lock_timeout', v_lock_timeout, true);
            -- Under the lock no writer is mid-insert: any row visible now is
            -- a straggler that arrived after the drain; leave it for a fold.
            EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
            IF NOT v_found THEN
                EXECUTE format('TRUNCATE %s', v_rel);
                UPDATE tally.shards AS s SET drained_xid = NULL, truncated_at = now(), resume_at = '(0,0)'
                WHERE s.shard_table = v_rel;
                DELETE FROM tally.shard_slices AS x WHERE x.shard_table = v_rel;
                INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
                VALUES (p_started, 0, p_attempt, 'ok', v_rel::text, 'truncate');
                v_truncated := v_truncated + 1;
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM set_config('lock_timeout', v_lock_timeout, true);  -- busy: next step
        END;
    END LOOP;
    RETURN v_truncated;
END;
$$;

COMMENT ON FUNCTION tally._reclaim_shards(smallint, integer, timestamptz) IS
'Internal: TRUNCATE the drained shards of an inactive generation whose dead rows no snapshot can see.';
