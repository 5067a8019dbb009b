-- tally.track_table_online: tally.track_table without holding the table's
-- writers for the scan: installs the triggers and commits (writers wait
-- only for CREATE TRIGGER, as for any trigger), then counts the rows that
-- were there (tally.backfill_tracked) while writers go on, and commits.
-- p_counted returns the count (or sum). Call it outside a transaction
-- block. If it is interrupted after the first commit, the counter is left
-- 'backfilling' in tally.tracked_tables: SELECT tally.backfill_tracked()
-- finishes it. SECURITY INVOKER without SET clauses because PostgreSQL
-- allows COMMIT only there; it calls tally's own functions only,
-- schema-qualified.
CREATE OR REPLACE PROCEDURE tally.track_table_online(
    p_counter text,
    p_table regclass,
    p_key_column name,
    p_at_column name DEFAULT NULL,
    p_sum_column name DEFAULT NULL,
    p_where text DEFAULT NULL,
    INOUT p_counted bigint DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM tally.track_table(p_counter, p_table, p_key_column, p_at_column, p_sum_column, p_where, true);
    COMMIT;
    p_counted := tally.backfill_tracked(p_counter);
    COMMIT;
END;
$$;

COMMENT ON PROCEDURE tally.track_table_online (text, regclass, name, name, name, text, bigint) IS
'tally.track_table without holding the table''s writers for the scan: triggers first (committed), then the '
'backfill; p_counted returns the count.';
