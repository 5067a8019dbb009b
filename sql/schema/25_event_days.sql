-- One row per partition of tally.event_ids: its first day (day, also the
-- seen_on of every row in it) and the first day after it (next_day).
-- Partitions are contiguous and up to 7 days wide (tally._event_partitions).
-- first_xid: an xid assigned no earlier than the partition's first day
-- began (UTC); NULL until tally._event_partitions notes it on or after that
-- day. While a snapshot's xmin is not older than it (or it is NULL), a
-- transaction that began in the partition before may still be running
-- (tally._claim_days).
CREATE TABLE tally.event_days (
    day date NOT NULL,  -- noqa: RF04
    first_xid xid8,
    next_day date NOT NULL,
    CONSTRAINT event_days_pkey PRIMARY KEY (day),
    CONSTRAINT event_days_next_day_check CHECK (next_day > day)
);
