-- tally._track_install: (re)make what counts a tracked table, from its
-- tally.tracked_tables row: the trigger function tally._tracked_<counter
-- id>() (SECURITY DEFINER, pinned search_path: the application's writers
-- need no grant on tally; it appends through the same delta shards as
-- tally.increment_counters, and also logs what it appends while the row's
-- state is 'backfilling'), the four statement triggers on the table when
-- they are missing, and, with p_registrant, the counter's source of truth
-- (tally.sources) registered by that role. Called when a table is tracked,
-- when its backfill ends, after DDL on it (tally._track_ddl) and when its
-- counter's time zone changes (tally.set_time_zone).
CREATE OR REPLACE FUNCTION tally._track_install(p_counter_id integer, p_registrant name)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was text;
    v_track tally.tracked_tables;
    v_counter tally.counters;
    v_fn text := format('_tracked_%s', p_counter_id);
    v_log boolean;
    v_durable text;
    v_what text;
    v_stmts text[] := ARRAY[]::text[];
    v_zone text;
    v_event text;
    v_trigger text;
    v_body text;
    v_source text;
BEGIN
    -- (tally._track_ddl leaves this DDL alone)
    v_was := current_setting('tally.tracking_ddl', true);
    PERFORM set_config('tally.tracking_ddl', 'on', true);
    SELECT t.* INTO STRICT v_track FROM tally.tracked_tables AS t WHERE t.counter_id = p_counter_id;
    SELECT c.* INTO STRICT v_counter FROM tally.counters AS c WHERE c.id = p_counter_id;
    v_log := v_track.state = 'backfilling';
    v_what := format('tally: table %s, counted by counter "%s"', v_track.table_name::regclass, v_counter.name);
    v_durable := v_counter.durable::text;
    v_zone := quote_literal(v_counter.time_zone);
    -- (the counter's durability and zone are constants here: a zone
    -- changed by tally.set_time_zone makes the function again)
    -- Each event's statement appends while no backlog limit holds writers
    -- back; when it appended nothing, the trigger checks whether one does
    -- (tally._admit waits or refuses) and appends whatever the state is
    -- then: one statement in the common case (NOT FOUND alone is no query). While a backfill logs, the check comes first.
    FOREACH v_event IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] LOOP
        v_stmts := v_stmts || CASE WHEN v_log
            THEN format(E'IF (SELECT w.backlog_state FROM tally.write_gen AS w) <> 0 THEN\n'
                        '            PERFORM tally._admit(%L, 1);\n        END IF;\n        %s;',
                        v_what, tally._track_sql(v_track, v_event, v_durable, v_zone, true))
            ELSE format(E'%s;\n        IF NOT FOUND THEN\n'
                        '            IF (SELECT w.backlog_state FROM tally.write_gen AS w) <> 0 THEN\n'
                        '                PERFORM tally._admit(%L, 1);\n            END IF;\n'
                        '            %s;\n        END IF;',
                        tally._track_sql(v_track, v_event, v_durable, v_zone, false, true), v_what,
                        tally._track_sql(v_track, v_event, v_durable, v_zone, false))
        END;
    END LOOP;
    v_body := format($body$
#variable_conflict use_column
BEGIN
    IF TG_OP = 'INSERT' THEN
        %1$s
    ELSIF TG_OP = 'UPDATE' THEN
        %2$s
    ELSIF TG_OP = 'DELETE' THEN
        %3$s
    ELSE
        -- (rows committed after an older snapshot would be truncated
        -- uncounted)
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'tally: TRUNCATE of table %%, counted by counter %%, needs READ COMMITTED', TG_TABLE_NAME,
                %5$L
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'truncate it in a READ COMMITTED transaction, or DELETE its rows';
        END IF;
        %4$s
    END IF;
    RETURN NULL;
END;
$body$, v_stmts[1], v_stmts[2], v_stmts[3], v_stmts[4], v_counter.name);
    EXECUTE format('CREATE OR REPLACE FUNCTION tally.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER'
                   ' SET search_path = pg_catalog, pg_temp AS %L', v_fn, v_body);
    EXECUTE format('REVOKE ALL ON FUNCTION tally.%I() FROM PUBLIC', v_fn);
    EXECUTE format('COMMENT ON FUNCTION tally.%I() IS %L', v_fn,
                   format('tally: counts the rows of table %s for counter %s (tally.track_table)',
                          v_track.table_name::regclass, v_counter.name));

    FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        v_trigger := format('tally_%s_%s', p_counter_id, v_event);
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_catalog.pg_trigger AS g WHERE g.tgrelid = v_track.table_name AND g.tgname = v_trigger
        );
        EXECUTE format('CREATE TRIGGER %I %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION tally.%I()',
                       v_trigger,
                       CASE v_event WHEN 'truncate' THEN 'BEFORE TRUNCATE' ELSE 'AFTER ' || upper(v_event) END,
                       v_track.table_name::regclass,
                       CASE v_event
                           WHEN 'insert' THEN 'REFERENCING NEW TABLE AS tally_new'
                           WHEN 'update' THEN 'REFERENCING OLD TABLE AS tally_old NEW TABLE AS tally_new'
                           WHEN 'delete' THEN 'REFERENCING OLD TABLE AS tally_old'
                           ELSE ''
                       END,
                       v_fn);
    END LOOP;

    IF p_registrant IS NOT NULL THEN
        v_source := tally._track_sql(v_track, 'SOURCE', NULL, NULL, false);
        PERFORM tally._install_source(v_counter, v_source, p_registrant, 'pg_catalog, pg_temp');
        INSERT INTO tally.sources AS s (counter_id, query, registered_by, registered_at)
        VALUES (v_counter.id, v_source, p_registrant, now())
        ON CONFLICT (counter_id) DO UPDATE
        SET query = excluded.query, registered_by = excluded.registered_by, registered_at = excluded.registered_at;
    END IF;
    PERFORM set_config('tally.tracking_ddl', coalesce(v_was, 'off'), true);
END;
$$;

COMMENT ON FUNCTION tally._track_install(integer, name) IS
'Internal: (re)make the trigger function, the triggers and the source of truth of a tracked table.';
