-- tally._make_append_local on a distributed install (Citus): write this
-- node's bodies of tally._append_local and tally._append_local_batch from
-- the delta shards it holds now.
-- The single append is one INSERT ... SELECT into the key's local shard
-- of tally.delta that looks the counter up in this node's copy of the
-- reference tables (their local shards), a static statement PostgreSQL
-- plans once per session and Citus does not plan at all. A shard move could
-- take the shard away, so before that statement the body takes the lock
-- every Citus write takes on the shard's placement metadata (a share lock
-- on it, the lock a move or split takes exclusively while it copies the
-- shard), and then checks, in a statement after the lock, that the
-- placement is still here: a write either lands before the move copies the
-- shard or finds it gone (its old table may be dropped by then) and takes
-- the general path (the check reads the node's own group, so a body that
-- reached another node, say a node added since, never writes there). A
-- batch locks every shard it writes, in order, and checks them all before
-- its first INSERT. Under REPEATABLE READ or SERIALIZABLE a statement would
-- read a snapshot older than the lock: the bodies return NULL there.
-- A body made before a move is only slower, never wrong (its shards that
-- left fail the check; shards that arrived are not in it): tally.maintain
-- makes every node's body again when its shards changed (p_everywhere).
CREATE OR REPLACE FUNCTION tally._make_append_local(p_everywhere boolean DEFAULT FALSE)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group integer;
    v_delta regclass := 'tally.delta'::regclass;
    v_shards bigint[];
    v_counters bigint;
    v_gen bigint;
    v_tag text;
    v_body text;
    v_batch_body text;
    v_propagation text;
    v_node text;
    v_ok boolean;
    v_result text;
    v_local_group text := 'pg_dist_local_group';
    v_failed text[] := ARRAY[]::text[];
BEGIN
    IF p_everywhere THEN
        -- (Citus's catalogs and functions, named in dynamic statements: the
        -- code is also checked on installs without Citus.)
        FOR v_node, v_ok, v_result IN EXECUTE format(
            'SELECT format(''%%s:%%s'', n.nodename, n.nodeport), r.success, r.result
             FROM run_command_on_all_nodes(%L) AS r
             JOIN pg_dist_node AS n ON n.nodeid = r.nodeid
             ORDER BY n.groupid, n.nodename, n.nodeport',
            'SELECT string_agg(l, ''; '') FROM tally._make_append_local(false) AS l')
        LOOP
            IF NOT v_ok THEN
                v_failed := v_failed || format('%s: %s', v_node, v_result);
            ELSE
                RETURN NEXT format('%s: %s', v_node, v_result);
            END IF;
        END LOOP;
        IF cardinality(v_failed) > 0 THEN
            RAISE EXCEPTION 'tally._make_append_local: % of the nodes could not be written: %',
                cardinality(v_failed), array_to_string(v_failed, '; ')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Their increments take the general path meanwhile; tally.maintain() writes them again.';
        END IF;
        RETURN;
    END IF;

    EXECUTE format('SELECT groupid FROM %I', v_local_group) INTO v_group;
    EXECUTE format(
        'SELECT array_agg(s.shardid ORDER BY s.shardid)
         FROM pg_dist_shard AS s JOIN pg_dist_placement AS p ON p.shardid = s.shardid
         WHERE s.logicalrelid = %s AND p.groupid = %s', v_delta::oid, v_group)
        INTO v_shards;
    EXECUTE format(
        'SELECT min(s.shardid) FILTER (WHERE s.logicalrelid = %s), min(s.shardid) FILTER (WHERE s.logicalrelid = %s)
         FROM pg_dist_shard AS s JOIN pg_dist_placement AS p ON p.shardid = s.shardid
         WHERE p.groupid = %s', 'tally.counters'::regclass::oid, 'tally.write_gen'::regclass::oid, v_group)
        INTO v_counters, v_gen;
    IF v_counters IS NULL OR v_gen IS NULL THEN
        v_shards := NULL;  -- (no local copy of the reference tables)
    END IF;
    v_tag := format('-- made by tally._make_append_local for node group %s: delta shards %s',
                    v_group, coalesce(v_shards::text, '{}'));
    IF v_shards IS NULL THEN
        v_body := E'\nBEGIN\n    RETURN NULL;\nEND;\n';
        v_batch_body := v_body;
    ELSE
        v_body := format(
            $body$
DECLARE
    v_sid bigint;
    v_locked text;
BEGIN
    IF p_key IS NULL OR current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN NULL;
    END IF;
    v_sid := get_shard_id_for_distribution_column(%1$s::regclass, p_key);
    IF v_sid <> ALL (%2$L::bigint[]) THEN
        RETURN NULL;
    END IF;
    -- ShareLock (5), in an assignment: a simple expression, no statement
    v_locked := lock_shard_metadata(5, ARRAY[v_sid])::text;
    -- (a statement after the lock: it sees a move that committed before;
    -- the shard's old table may be gone then)
    PERFORM FROM pg_dist_placement AS p JOIN pg_dist_local_group AS g ON g.groupid = p.groupid
    WHERE p.shardid = v_sid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    CASE v_sid
%3$s
    END CASE;
    RETURN CASE WHEN FOUND THEN true END;
END;
$body$,
            v_delta::oid, v_shards,
            (SELECT string_agg(format(
                '        WHEN %1$s THEN INSERT INTO tally.%2$I (shard, counter_id, key, delta, at)'
                || E'\n            SELECT tally._shard(w.gen, c.durable, false), c.id, p_key, p_delta, p_at'
                || E'\n            FROM tally.%3$I AS c CROSS JOIN tally.%4$I AS w'
                || E'\n            WHERE c.name = p_counter AND tally._valid_key(p_key) AND p_delta IS NOT NULL'
                || E'\n              AND tally._valid_at(p_at) AND w.backlog_state = 0;',
                s, 'delta_' || s, 'counters_' || v_counters, 'write_gen_' || v_gen), E'\n')
             FROM unnest(v_shards) AS s));
        -- A batch: every element valid and every key's shard here, or NULL
        -- (the general path). One statement checks every element, looks its
        -- counter and the generation up and sorts the elements by shard;
        -- the shards it writes are locked in order and checked, as above;
        -- then one INSERT per shard of its slice of the sorted rows, each
        -- looking its counters up again (a counter dropped meanwhile: fewer
        -- rows than elements, and the caller fails the batch).
        v_batch_body := format(
            $body$
DECLARE
    v_n bigint;
    v_each bigint[];
    v_ends integer[];
    v_rows tally.delta[];
    v_lo integer := 1;
    v_hi integer;
    v_locked text;
    v_rows_in bigint := 0;
    v_got bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' OR coalesce(cardinality(p_counters), 0) = 0 THEN
        RETURN NULL;
    END IF;
    -- (each aggregate ordered by r, the position in that order: a slice
    -- v_rows[lo:hi] is one shard's elements whatever plan the statement gets)
    SELECT count(x.id), array_agg(x.s ORDER BY x.r) FILTER (WHERE x.last),
           array_agg(x.r ORDER BY x.r) FILTER (WHERE x.last),
           array_agg(ROW(x.shard, x.id, x.k, x.d, x.t, NULL)::tally.delta ORDER BY x.r)
    INTO v_n, v_each, v_ends, v_rows
    FROM (SELECT y.*, row_number() OVER w AS r, lead(y.s) OVER w IS DISTINCT FROM y.s AS last
          FROM (SELECT CASE WHEN u.k IS NOT NULL THEN get_shard_id_for_distribution_column(%1$s::regclass, u.k) END AS s,
                       u.i, c.id,
                       tally._shard(g.gen, c.durable, p_bulk) AS shard, u.k, u.d, coalesce(u.t, now()) AS t
                FROM unnest(p_counters, p_keys, p_deltas, p_ats) WITH ORDINALITY AS u (n, k, d, t, i)
                LEFT JOIN tally.%4$I AS c
                  ON c.name = u.n AND tally._valid_key(u.k) AND u.d IS NOT NULL
                     AND (p_ats IS NULL OR tally._valid_at(u.t))
                CROSS JOIN tally.%5$I AS g) AS y
          WINDOW w AS (ORDER BY y.s, y.i)
          ORDER BY y.s, y.i) AS x;
    -- (every element valid, its counter known: else the caller's checks)
    IF v_n <> cardinality(p_counters) OR NOT v_each <@ %2$L::bigint[] THEN
        RETURN NULL;
    END IF;
    v_locked := lock_shard_metadata(5, v_each)::text;  -- ShareLock
    IF (SELECT count(*) FROM pg_dist_placement AS p JOIN pg_dist_local_group AS g ON g.groupid = p.groupid
        WHERE p.shardid = ANY (v_each)) <> cardinality(v_each) THEN
        RETURN NULL;
    END IF;
    FOR j IN 1 .. cardinality(v_each) LOOP
        v_hi := v_ends[j];
        CASE v_each[j]
%3$s
        END CASE;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_rows_in := v_rows_in + v_got;
        v_lo := v_hi + 1;
    END LOOP;
    RETURN v_rows_in;
END;
$body$,
            v_delta::oid, v_shards,
            (SELECT string_agg(format(
                '            WHEN %1$s THEN INSERT INTO tally.%2$I (shard, counter_id, key, delta, at)'
                || E'\n                SELECT u.shard, u.counter_id, u.key, u.delta, u.at FROM unnest(v_rows[v_lo:v_hi]) AS u'
                || E'\n                JOIN tally.%3$I AS c ON c.id = u.counter_id;',
                s, 'delta_' || s, 'counters_' || v_counters), E'\n')
             FROM unnest(v_shards) AS s), 'counters_' || v_counters, 'write_gen_' || v_gen);
    END IF;

    -- (bodies as they are now: nothing to write)
    IF (SELECT count(*) FROM pg_catalog.pg_proc AS p
        WHERE p.proconfig = ARRAY['search_path=pg_catalog, pg_temp'] AND (
              (p.oid = 'tally._append_local(text, text, bigint, timestamptz)'::regprocedure
               AND p.prosrc = E'\n' || v_tag || v_body)
           OR (p.oid = 'tally._append_local_batch(text[], text[], bigint[], timestamptz[], boolean)'::regprocedure
               AND p.prosrc = E'\n' || v_tag || v_batch_body))) = 2
    THEN
        RETURN NEXT format('%s delta shards here (unchanged)', coalesce(cardinality(v_shards), 0));
        RETURN;
    END IF;

    -- This node's own body: not propagated to the others.
    v_propagation := current_setting('citus.enable_ddl_propagation');
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION tally._append_local(p_counter text, p_key text, p_delta bigint, p_at timestamptz) '
        'RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L', E'\n' || v_tag || v_body);
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION tally._append_local_batch(p_counters text[], p_keys text[], p_deltas bigint[], '
        'p_ats timestamptz[], p_bulk boolean) '
        'RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L', E'\n' || v_tag || v_batch_body);
    PERFORM set_config('citus.enable_ddl_propagation', v_propagation, true);
    RETURN NEXT format('%s delta shards here (written)', coalesce(cardinality(v_shards), 0));
END;
$$;

COMMENT ON FUNCTION tally._make_append_local(boolean) IS
'Internal: write this node''s bodies of tally._append_local(_batch) from its delta shards (every node with '
'p_everywhere); one line per node written or checked. Nothing on a single-node install.';
