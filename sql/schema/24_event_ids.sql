-- The idempotency store: one row per (counter, event id) applied, in the
-- partition of the UTC day it was applied, and of each other partition
-- tally._claim_days() names. Partitions span up to 7 days (the window, if
-- shorter; tally.event_days lists them), and seen_on is the first day of
-- the row's partition, so a claim meets any other claim of the same id in
-- that partition through the primary key (a unique index cannot span
-- partitions), and a lookup probes one or two older partitions, not one per
-- day of the window. Partitions wholly past the window are dropped by
-- tally._event_partitions(), which also creates them; nothing is DELETEd.
-- key: the key the increment went to (on a distributed install
-- it is the distribution column and part of the primary key).
CREATE TABLE tally.event_ids (
    counter_id integer NOT NULL,
    event_id text NOT NULL,
    seen_on date NOT NULL,
    key text,  -- noqa: RF04
    CONSTRAINT event_ids_pkey PRIMARY KEY (counter_id, event_id, seen_on)
) PARTITION BY RANGE (seen_on);

COMMENT ON TABLE tally.event_ids IS 'tally: event ids applied within the idempotency window, by partition (up to 7 days)';
