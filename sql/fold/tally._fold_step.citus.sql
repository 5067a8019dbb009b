-- tally._fold_step on a distributed install (Citus): one step folds
-- every delta this transaction sees, folded into totals and rollups and
-- deleted, by statements Citus pushes down to every shard of the colocated
-- tables (grouped by the distribution column, key): each worker folds its
-- own shards, at once, and no delta row leaves its worker. The transaction
-- is REPEATABLE READ with one connection per worker (the caller,
-- tally.compact_step, makes sure), so on each worker every statement sees
-- the same snapshot: what is deleted is exactly what was folded, and a delta
-- committed meanwhile is left for the next step. Citus commits the step on
-- every worker at once (two-phase commit): all of it or none of it. One
-- step at a time (the fold lock, exclusive): no two folds update the same
-- rows, so none waits on another (writers only append).
-- A step whose sums overflow bigint sets the offending keys' deltas aside
-- in tally.quarantine (also pushed down) and folds the rest. The writes and
-- the rule of poison are the single node's (tally._fold_upserts,
-- tally._overflowing), over tally.delta itself. Every key at once (slices
-- are a single node's); p_limit, p_flip_until and p_max_gen_age are not
-- used: a step folds everything its snapshot sees.
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
    v_started timestamptz := clock_timestamp();
    v_pending bigint;
    v_deleted bigint;
    v_set_aside bigint := 0;
    v_flips bigint;
    -- this session's temporary tables (see below)
    v_days text := 'pg_temp.fold_days';
    v_poison text := 'pg_temp.fold_poison';
BEGIN
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'tally._fold_step: a distributed fold step needs a REPEATABLE READ transaction, not %',
                        current_setting('transaction_isolation')
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'fold with CALL tally.compact() or tally.compact_loop(), which set the isolation themselves';
    END IF;
    -- One step at a time, and this transaction's snapshot taken after the
    -- last step committed: the caller holds the fold lock at session
    -- level, taken before this transaction began (tally.compact does).
    IF NOT EXISTS (
        SELECT 1 FROM pg_locks AS l
        WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.mode = 'ExclusiveLock'
          AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = tally._fold_lock_key()
    ) THEN
        RAISE EXCEPTION 'tally._fold_step: a distributed fold step needs the fold lock taken before its transaction'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'fold with CALL tally.compact() or tally.compact_loop(), which take it';
    END IF;
    -- One connection per worker (tally.compact_step runs with
    -- citus.max_adaptive_executor_pool_size = 1): every statement below
    -- runs in the same worker transaction, with the snapshot of the first.

    -- The first statement on each worker (its snapshot): what is pending,
    -- and per counter and UTC day the first and the latest time, for the
    -- partitions (a row each; the count on the latest's).
    IF to_regclass('pg_temp.fold_days') IS NULL THEN
        CREATE TEMP TABLE fold_days (counter_id integer, minute timestamptz, n bigint) ON COMMIT DELETE ROWS;
    END IF;
    -- (Statements on this session's temporary tables are dynamic: planned
    -- when they run, against the tables as they are then.)
    EXECUTE format(
        'INSERT INTO %s
         SELECT x.counter_id, v.minute, v.n
         FROM (SELECT d.counter_id, min(d.at) AS lo, max(d.at) AS hi, count(*) AS n
               FROM tally.delta AS d
               GROUP BY d.counter_id, date_trunc(''day'', d.at, ''UTC'')) AS x
         CROSS JOIN LATERAL (VALUES (x.hi, x.n), (x.lo, 0::bigint)) AS v (minute, n)', v_days);
    EXECUTE format('SELECT coalesce(sum(f.n), 0) FROM %s AS f', v_days) INTO v_pending;
    -- Every step, folding or not, ends with every delta its snapshot sees
    -- folded, and that snapshot is newer than the last step's commit (the
    -- fold lock is taken before the transaction). Say so the way a single
    -- node does (a flip that found both generations empty): a compact()
    -- call is done two steps after it began, whatever writers keep adding.
    -- (Every increment acknowledged before this transaction began is
    -- visible to its snapshot, so folded once it commits: folded_before.)
    UPDATE tally.write_gen AS w
    SET flips = w.flips + 1, flipped_at = now(), emptied_at_flip = ARRAY[w.flips + 1, w.flips + 1],
        folded_before = ARRAY[now(), now()]
    RETURNING w.flips INTO v_flips;
    IF v_pending = 0 THEN
        RETURN QUERY SELECT 'flipped'::text, 0::bigint, v_flips, NULL::text, NULL::text;
        RETURN;
    END IF;
    PERFORM tally._ensure_partitions(to_regclass(v_days));

    BEGIN
        PERFORM tally._fold_upserts('tally.delta', 'at', ARRAY(SELECT c.id FROM tally.counters AS c));
    EXCEPTION WHEN numeric_value_out_of_range THEN
        -- Poison: set aside the deltas of the pairs whose fold would leave
        -- the bigint range (only the pairs reach the coordinator), and fold
        -- the rest.
        IF to_regclass('pg_temp.fold_poison') IS NULL THEN
            CREATE TEMP TABLE fold_poison (counter_id integer, key text) ON COMMIT DELETE ROWS;
        END IF;
        EXECUTE format('INSERT INTO %s SELECT p.counter_id, p.key FROM tally._overflowing(%L) AS p',
                       v_poison, 'tally.delta');
        EXECUTE format(
            'INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
             SELECT d.counter_id, d.key, d.delta, d.at, d.written_at, tally._quarantine_reason()
             FROM tally.delta AS d
             WHERE (d.counter_id, d.key) IN (SELECT DISTINCT p.counter_id, p.key FROM %s AS p)', v_poison);
        GET DIAGNOSTICS v_set_aside = ROW_COUNT;
        EXECUTE format(
            'DELETE FROM tally.delta AS d
             WHERE (d.counter_id, d.key) IN (SELECT DISTINCT p.counter_id, p.key FROM %s AS p)', v_poison);
        PERFORM tally._fold_upserts('tally.delta', 'at', ARRAY(SELECT c.id FROM tally.counters AS c));
    END;
    DELETE FROM tally.delta;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    IF v_deleted + v_set_aside <> v_pending THEN
        -- Not one snapshot per worker after all: fold nothing.
        RAISE EXCEPTION 'tally._fold_step: % deltas pending but % deleted', v_pending, v_deleted + v_set_aside
            USING ERRCODE = 'serialization_failure', HINT = 'the step is rolled back and retried';
    END IF;
    IF v_set_aside > 0 THEN
        INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode, error)
        VALUES (v_started, v_set_aside, p_attempt, 'ok', 'tally.delta', 'quarantine',
                format('%s deltas set aside: folding them would overflow bigint (see tally.quarantined)', v_set_aside));
    END IF;
    INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
    VALUES (v_started, v_deleted, p_attempt, 'ok', 'tally.delta', 'delete');
    RETURN QUERY SELECT 'folded'::text, v_deleted, v_flips, NULL::text,
                        CASE WHEN v_set_aside > 0 THEN 'quarantine' ELSE 'delete' END;
END;
$$;

COMMENT ON FUNCTION tally._fold_step(integer, bigint, integer, interval, integer, integer) IS
'Internal: one compactor step of a distributed install: every pending delta folded and deleted on its own worker.';
