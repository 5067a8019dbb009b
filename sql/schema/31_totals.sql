-- The all-time value per (counter, key), always kept. Rows are updated in
-- place by every fold: fillfactor 70 leaves room on each page so the update
-- stays on the page (HOT; value is in no index), and autovacuum comes early.
CREATE TABLE tally.totals (
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    value bigint NOT NULL,  -- noqa: RF04
    CONSTRAINT totals_pkey PRIMARY KEY (counter_id, key)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02);
