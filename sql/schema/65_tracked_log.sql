-- What the triggers of a table being backfilled online appended (the same
-- rows as their deltas): tally.track_table_online subtracts the entries its
-- snapshot sees from the rows it counts, so a change both committed before
-- that snapshot and counted by a trigger is counted once. Emptied when the
-- backfill ends.
CREATE TABLE tally.tracked_log (
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    at timestamptz NOT NULL,  -- noqa: RF04
    delta bigint NOT NULL
);

CREATE INDEX tracked_log_counter_id_idx ON tally.tracked_log (counter_id);

COMMENT ON TABLE tally.tracked_log IS 'tally: what the triggers of a table backfilled online appended';
