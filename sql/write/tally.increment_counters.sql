-- tally.increment_counters: a batch of increments, element i being
-- (p_counters[i], p_keys[i], p_deltas[i], p_ats[i]). Every element is checked
-- before anything is written, and the whole batch is one INSERT: it is
-- applied whole or not at all. Returns the number of increments applied.
--
-- With p_event_ids (one id per element, none NULL), element i is applied at
-- most once per counter within the idempotency window, as with
-- tally.increment_counter: elements whose id was applied before, or that
-- repeat an id earlier in the same batch, are left out and not counted in
-- the result. Replaying a batch that died, or was partly sent before,
-- applies exactly the elements not applied yet. A counter dropped while the
-- batch is written (after its check) fails the whole batch as unknown.
-- SET citus.max_adaptive_executor_pool_size: on a distributed install the
-- batch's rows reach each worker over the one connection Citus keeps to it,
-- not over new ones opened (and closed) per call (18x the batches in one
-- run); elsewhere the setting means nothing.
CREATE OR REPLACE FUNCTION tally.increment_counters(
    p_counters text[],
    p_keys text[],
    p_deltas bigint[],
    p_ats timestamptz[] DEFAULT NULL,
    p_event_ids text[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET citus.max_adaptive_executor_pool_size = '1'  -- noqa: PRS
AS $$
DECLARE
    c_fn constant text := 'tally.increment_counters';
    c_max constant integer := 100000;
    -- a batch over this many increments is bulk (a backfill): its own shard
    -- slot, so live increments never wait behind it in a fold
    c_bulk constant integer := 1000;
    v_n integer;
    v_rows bigint;
    v_known bigint := 0;
    v_bad record;
BEGIN
    IF p_counters IS NULL OR p_keys IS NULL OR p_deltas IS NULL THEN
        RAISE EXCEPTION '%: p_counters, p_keys and p_deltas must not be NULL', c_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass three arrays of the same length (and optionally p_ats)';
    END IF;
    IF greatest(array_ndims(p_counters), array_ndims(p_keys), array_ndims(p_deltas), array_ndims(p_ats),
                array_ndims(p_event_ids)) > 1 THEN
        RAISE EXCEPTION '%: arrays must be one-dimensional', c_fn
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'element i of every array describes increment i: pass flat arrays';
    END IF;
    v_n := cardinality(p_counters);
    IF cardinality(p_keys) <> v_n OR cardinality(p_deltas) <> v_n
       OR (p_ats IS NOT NULL AND cardinality(p_ats) <> v_n)
       OR (p_event_ids IS NOT NULL AND cardinality(p_event_ids) <> v_n) THEN
        RAISE EXCEPTION '%: arrays differ in length (counters %, keys %, deltas %, ats %, event ids %)', c_fn,
            v_n, cardinality(p_keys), cardinality(p_deltas), coalesce(cardinality(p_ats)::text, 'NULL'),
            coalesce(cardinality(p_event_ids)::text, 'NULL')
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'element i of every array describes increment i: give them all the same length';
    END IF;
    IF v_n > c_max THEN
        RAISE EXCEPTION '%: batch of % increments is over the limit of %', c_fn, v_n, c_max
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'split the batch; each call is applied all-or-nothing';
    END IF;
    IF v_n = 0 THEN
        RETURN 0;
    END IF;
    -- slowed, or refused, while the backlog limits hold writers back
    IF (SELECT w.backlog_state FROM tally.write_gen AS w) <> 0 THEN
        PERFORM tally._admit(c_fn, v_n);
    END IF;

    -- On a Citus node that holds every key's shard, the whole batch into
    -- those local shards, if every element is valid (else NULL, nothing
    -- appended, and the checks below say what is wrong); NULL on one node.
    IF p_event_ids IS NULL THEN
        v_rows := tally._append_local_batch(p_counters, p_keys, p_deltas, p_ats, v_n > c_bulk);
        IF v_rows IS NOT NULL THEN
            IF v_rows < v_n THEN
                PERFORM tally._counters_vanished(c_fn, p_counters);
            END IF;
            RETURN v_rows;
        END IF;
    END IF;

    -- Validate every element first; report the first bad one.
    SELECT u.i, u.n, u.k, u.d, u.t, u.e, c.id AS counter_id INTO v_bad
    -- (p_event_ids NULL: unnest pads it with NULLs, and ids are not checked)
    FROM unnest(p_counters, p_keys, p_deltas, coalesce(p_ats, array_fill(now(), ARRAY[v_n])), p_event_ids)
        WITH ORDINALITY AS u (n, k, d, t, e, i)
    LEFT JOIN tally.counters AS c ON c.name = u.n
    WHERE c.id IS NULL OR NOT tally._valid_key(u.k) OR u.d IS NULL OR NOT tally._valid_at(u.t)
       OR (p_event_ids IS NOT NULL AND NOT tally._valid_event_id(u.e))
    ORDER BY u.i
    LIMIT 1;
    IF FOUND THEN
        PERFORM tally._check_increment(c_fn, v_bad.i, v_bad.n, v_bad.k, v_bad.d, v_bad.t, p_event_ids IS NOT NULL,
                                       v_bad.e);
    END IF;

    IF p_event_ids IS NOT NULL THEN
        -- Each (counter, event id) at most once, claimed first; in logged
        -- shards (see tally.increment_counter).
        SELECT a.appended, a.known INTO v_rows, v_known
        FROM tally._append_claimed(p_counters, p_keys, p_deltas, p_ats, p_event_ids, v_n > c_bulk) AS a;
        IF v_known < v_n THEN
            PERFORM tally._counters_vanished(c_fn, p_counters);
        END IF;
        RETURN v_rows;
    END IF;

    INSERT INTO tally.delta (shard, counter_id, key, delta, at)
    SELECT tally._shard(w.gen, c.durable, v_n > c_bulk), c.id, u.k, u.d, coalesce(u.t, now())
    FROM unnest(p_counters, p_keys, p_deltas, p_ats) AS u (n, k, d, t)
    JOIN tally.counters AS c ON c.name = u.n
    CROSS JOIN tally.write_gen AS w;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < v_n THEN
        PERFORM tally._counters_vanished(c_fn, p_counters);
    END IF;
    RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION tally.increment_counters(text[], text[], bigint[], timestamptz[], text[]) IS
'Apply a batch of increments all-or-nothing; every element is validated first; with p_event_ids each at most once '
'within the idempotency window. Returns the number applied.';
