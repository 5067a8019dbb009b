-- A table whose rows a counter counts (tally.track_table): for every key,
-- the counter is the number of the table's rows with that key (or the sum of
-- sum_column), among the rows where predicate holds. Statement triggers
-- tally_<counter id>_{insert,update,delete,truncate} on the table run
-- tally._tracked_<counter id>(), made from this row. The table as a
-- regclass (a dump restores it as the table's new OID); columns by number
-- (a renamed column is followed); their types as tracked (a changed type is
-- refused by tally._track_ddl). state 'backfilling': the rows that
-- were there are being counted by tally.track_table_online, and the
-- triggers also log what they append (tally.tracked_log).
CREATE TABLE tally.tracked_tables (
    counter_id integer NOT NULL,
    table_name regclass NOT NULL,
    key_column smallint NOT NULL,
    key_type regtype NOT NULL,
    at_column smallint,
    sum_column smallint,
    sum_type regtype,
    predicate text,
    state text NOT NULL,
    backfilled bigint,
    tracked_by name NOT NULL DEFAULT session_user,
    tracked_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tracked_tables_pkey PRIMARY KEY (counter_id),
    CONSTRAINT tracked_tables_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id)
    ON DELETE CASCADE,
    CONSTRAINT tracked_tables_state_check CHECK (state IN ('backfilling', 'active'))
);

COMMENT ON TABLE tally.tracked_tables IS 'tally: the tables whose rows a counter counts (tally.track_table)';
