-- tally._track_sql: the SQL that counts a tracked table's rows (made from
-- its tally.tracked_tables row, with the columns' names of now), for
--   INSERT, UPDATE, DELETE   the trigger's statement over its transition
--                            tables (tally_new, tally_old);
--   TRUNCATE                 the trigger's statement over the whole table,
--                            taken away;
--   BACKFILL                 the rows already there, less what the
--                            triggers logged (tally.tracked_log) that the
--                            same snapshot sees; returns the count or sum;
--   SOURCE                   the source-of-truth query for one key ($1).
-- A row counts when its key is not NULL or empty, its timestamp (with an
-- at column) not NULL and the predicate true; it adds 1, or the sum
-- column. The rows are grouped per key and minute of the counter's zone
-- (p_zone; per key at now() without an at column): one delta per group.
-- p_durable and p_zone are SQL expressions giving the counter's durability
-- and zone (a PL/pgSQL variable in the trigger, $1 and $2 in the backfill).
-- With p_log the statement also logs what it appends (an online backfill
-- is under way). p_gated appends only while no backlog limit holds writers
-- back (tally.write_gen.backlog_state 0), as tally.increment_counter's
-- first statement: the trigger then checks why nothing was appended. A key or timestamp the counter cannot take stops the
-- statement (tally._track_refuse).
CREATE OR REPLACE FUNCTION tally._track_sql(
    p_track tally.tracked_tables, p_event text, p_durable text, p_zone text, p_log boolean,
    p_gated boolean DEFAULT FALSE
)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- (k, a, n) of every row counted in a relation: 1 key, 2 timestamp,
    -- 3 amount, 4 relation, 5 further conditions
    -- (in collation "C": a key is its text, byte for byte)
    c_rows constant text := 'SELECT t.%1$I::text COLLATE "C" AS k, %2$s AS a, %3$s AS n FROM %4$s AS t'
                            ' WHERE t.%1$I IS NOT NULL AND t.%1$I::text <> '''' %5$s';
    v_key name;
    v_at name;
    v_sum name;
    v_table text := format('ONLY %s', p_track.table_name::regclass);
    v_when text := '';
    v_ts text := 'now()';
    v_add text := '1';
    v_sub text := '-1';
    v_rows text;
    v_agg text;
    v_append text;
BEGIN
    SELECT a.attname INTO v_key FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = p_track.table_name AND a.attnum = p_track.key_column AND NOT a.attisdropped;
    IF p_track.at_column IS NOT NULL THEN
        SELECT a.attname INTO v_at FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = p_track.table_name AND a.attnum = p_track.at_column AND NOT a.attisdropped;
        v_ts := format('t.%I', v_at);
        v_when := format('AND t.%I IS NOT NULL ', v_at);
    END IF;
    IF p_track.sum_column IS NOT NULL THEN
        SELECT a.attname INTO v_sum FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = p_track.table_name AND a.attnum = p_track.sum_column AND NOT a.attisdropped;
        v_add := format('t.%I::bigint', v_sum);
        v_sub := format('- t.%I::bigint', v_sum);
    END IF;
    IF p_track.predicate IS NOT NULL THEN
        v_when := v_when || format('AND (%s)', p_track.predicate);
    END IF;

    v_rows := CASE p_event
        WHEN 'INSERT' THEN format(c_rows, v_key, v_ts, v_add, 'tally_new', v_when)
        WHEN 'UPDATE' THEN format(c_rows, v_key, v_ts, v_add, 'tally_new', v_when) || ' UNION ALL '
                           || format(c_rows, v_key, v_ts, v_sub, 'tally_old', v_when)
        WHEN 'DELETE' THEN format(c_rows, v_key, v_ts, v_sub, 'tally_old', v_when)
        WHEN 'TRUNCATE' THEN format(c_rows, v_key, v_ts, v_sub, v_table, v_when)
        WHEN 'BACKFILL' THEN format(c_rows, v_key, v_ts, v_add, v_table, v_when)
                             || format(' UNION ALL SELECT l.key, l.at, - l.delta FROM tally.tracked_log AS l'
                                       ' WHERE l.counter_id = %s', p_track.counter_id)
        WHEN 'SOURCE' THEN format(c_rows, v_key, v_ts, v_add, v_table,
                                  v_when || format(' AND t.%I = $1::%s', v_key, format_type(p_track.key_type, NULL)))
    END;
    IF v_rows IS NULL THEN
        RAISE EXCEPTION 'tally._track_sql: unknown event %', p_event USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_event = 'SOURCE' THEN
        -- (the marker tells tally's own source from one set by hand)
        RETURN format('/* tally.track_table */ SELECT coalesce(sum(r.n), 0)::bigint FROM (%s) AS r', v_rows);
    END IF;

    -- (without an at column every group is at now(): grouped by key only)
    v_agg := format('SELECT r.k, %s AS a, sum(r.n)::bigint AS n FROM (%s) AS r GROUP BY %s HAVING sum(r.n) <> 0',
                    CASE WHEN p_track.at_column IS NULL THEN 'now()'
                         ELSE format('tally._local_minute(r.a, %s)', p_zone) END,
                    v_rows,
                    CASE WHEN p_track.at_column IS NULL THEN '1' ELSE '1, 2' END);
    v_append := format(
        'INSERT INTO tally.delta (shard, counter_id, key, delta, at)'
        ' SELECT tally._shard(w.gen, %1$s, %2$s), %3$s,'
        ' CASE WHEN tally._valid_key(g.k) AND tally._valid_at(g.a) THEN g.k'
        ' ELSE tally._track_refuse(%3$s, g.k, g.a) END, g.n, g.a'
        ' FROM %4$s AS g CROSS JOIN tally.write_gen AS w%5$s',
        p_durable, CASE WHEN p_event = 'BACKFILL' THEN 'true' ELSE 'false' END, p_track.counter_id,
        CASE WHEN p_log THEN 'g' ELSE '(' || v_agg || ')' END,
        CASE WHEN p_gated THEN ' WHERE w.backlog_state = 0' ELSE '' END);
    IF p_event = 'BACKFILL' THEN
        RETURN format('WITH d AS (%s RETURNING delta) SELECT coalesce(sum(d.delta), 0)::bigint FROM d', v_append);
    ELSIF p_log THEN
        RETURN format('WITH g AS MATERIALIZED (%s), d AS (%s)'
                      ' INSERT INTO tally.tracked_log (counter_id, key, at, delta)'
                      ' SELECT %s, g.k, g.a, g.n FROM g', v_agg, v_append, p_track.counter_id);
    END IF;
    RETURN v_append;
END;
$$;

COMMENT ON FUNCTION tally._track_sql(tally.tracked_tables, text, text, text, boolean, boolean) IS
'Internal: the SQL counting a tracked table''s rows for a trigger event, the backfill or the source query.';
