-- The idempotency store: one row per (counter, event id) applied, in the
-- daily partition of the day it was applied (UTC), and of each other day
-- tally._claim_days() names. The primary key includes the day (a unique
-- index cannot span partitions). Partitions past the window are dropped
-- whole by tally._event_partitions(), which also creates them; nothing is
-- DELETEd. key: the key the increment went to (on a distributed install
-- it is the distribution column and part of the primary key).
CREATE TABLE tally.event_ids (
    counter_id integer NOT NULL,
    event_id text NOT NULL,
    seen_on date NOT NULL,
    key text,  -- noqa: RF04
    CONSTRAINT event_ids_pkey PRIMARY KEY (counter_id, event_id, seen_on)
) PARTITION BY RANGE (seen_on);

COMMENT ON TABLE tally.event_ids IS 'tally: event ids applied within the idempotency window, by day';
