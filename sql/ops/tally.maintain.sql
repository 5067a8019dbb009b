-- tally.maintain: tally's periodic maintenance, safe to run any time:
--   retention  pg_partman's retention of each rollup table follows the
--              counters' retention (tally._sync_retention);
--   partitions pg_partman premakes rollup partitions ahead and drops those
--              past retention (run_maintenance, per rollup table);
--   event_ids  the idempotency store's partitions (up to 7 days each) for
--              the window and three days ahead exist, older ones are dropped;
--   fold_runs  compactor history older than 7 days is pruned;
--   local writes  on a distributed install, each node's fast write
--              (tally._append_local) follows the shards it holds now.
-- Takes the fold lock first (waiting at most 10 s: a fold holds it for one
-- step), so it never waits on a fold's rows nor a fold on it, and a 200 ms
-- lock_timeout per table: a table it cannot lock at once is skipped until
-- the next run instead of queueing readers and writers behind it.
-- A step that fails is rolled back alone, reported (step 'failed', with its
-- SQLSTATE) and the others still run: maintenance never raises, so a
-- compactor that runs it never stops because of it. Every run is recorded
-- in tally.fold_runs (mode 'maintenance') and shows in tally.health.
-- Scheduled hourly by tally.schedule_compactor(), and run at the start of
-- every tally.compact_loop().
--
-- pg_partman sets search_path for the whole session while it works; the
-- caller's search_path (p_search_path, taken at the call site by default)
-- is put back at the end.
CREATE OR REPLACE FUNCTION tally.maintain(p_search_path text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS TABLE (step text, detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_failures text[] := ARRAY[]::text[];
    v_parent text;
    v_before bigint;
    v_after bigint;
    v_pruned bigint;
    v_state text;
    v_message text;
BEGIN
    PERFORM tally._coordinator_only('tally.maintain');
    BEGIN
        PERFORM set_config('lock_timeout', '10s', true);
        PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
        PERFORM set_config('lock_timeout', '200ms', true);
    EXCEPTION WHEN lock_not_available THEN
        v_failures := v_failures || '55P03: the fold lock stayed busy for 10 s'::text;
    END;

    IF cardinality(v_failures) = 0 THEN
        BEGIN
            PERFORM tally._sync_retention();
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            v_failures := v_failures || format('retention: %s: %s', v_state, v_message);
        END;
        FOR v_parent IN
            SELECT pc.parent_table FROM partman.part_config AS pc
            WHERE pc.parent_table LIKE 'tally.rollup\_%' ORDER BY pc.parent_table
        LOOP
            BEGIN
                -- pg_partman needs ACCESS EXCLUSIVE on the table to create or
                -- drop a partition; take it here, within the 200 ms: pg_partman
                -- itself reports a lock timeout as a plain error (P0001).
                EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_parent::regclass);
                v_before := (SELECT count(*) FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = v_parent::regclass);
                PERFORM partman.run_maintenance(p_parent_table => v_parent, p_analyze => false, p_jobmon => false);
                v_after := (SELECT count(*) FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = v_parent::regclass);
                step := 'partitions';
                detail := format('%s: %s partitions (%s)', v_parent, v_after,
                                 CASE WHEN v_after = v_before THEN 'unchanged'
                                      ELSE to_char(v_after - v_before, 'FMSG999999') END);
            EXCEPTION
                WHEN lock_not_available THEN
                    step := 'skipped';
                    detail := format('%s: could not lock it within 200 ms; next run', v_parent);
                WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
                    v_failures := v_failures || format('%s: %s: %s', v_parent, v_state, v_message);
                    CONTINUE;
            END;
            RETURN NEXT;
        END LOOP;
        BEGIN
            RETURN QUERY SELECT e.step, e.detail FROM tally._event_partitions() AS e;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            v_failures := v_failures || format('event_ids: %s: %s', v_state, v_message);
        END;
        DELETE FROM tally.fold_runs AS r WHERE r.started_at < now() - interval '7 days';
        GET DIAGNOSTICS v_pruned = ROW_COUNT;
        step := 'fold_runs';
        detail := format('%s rows older than 7 days pruned', v_pruned);
        RETURN NEXT;
    END IF;

    -- On a distributed install, every node's fast write follows its shards
    -- (tally._make_append_local; nothing on one node).
    BEGIN
        RETURN QUERY SELECT 'local writes'::text, l FROM tally._make_append_local(true) AS l;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        v_failures := v_failures || format('local writes: %s: %s', v_state, v_message);
    END;

    FOREACH detail IN ARRAY v_failures LOOP
        step := 'failed';
        RETURN NEXT;
    END LOOP;
    PERFORM tally._record_fold(v_started, 0, 1, CASE WHEN cardinality(v_failures) = 0 THEN 'ok' ELSE 'failed' END,
                               nullif(array_to_string(v_failures, '; '), ''), 'maintenance');
    IF p_search_path IS NOT NULL THEN
        PERFORM set_config('search_path', p_search_path, false);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally.maintain(text) IS
'Premake rollup partitions, drop partitions past retention, keep the event-id partitions, prune old fold runs; '
'never raises: failures are reported and recorded. Safe to run any time.';
