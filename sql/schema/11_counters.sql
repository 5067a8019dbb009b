-- One row per counter: its buckets and durability. granularities lists the
-- ones it keeps (the all-time total is always kept); a durable counter's
-- deltas go to logged shards, a fast one's to UNLOGGED shards. time_zone
-- is the IANA zone whose wall clock its buckets follow (minutes, hours,
-- days, ISO weeks and months of that zone's local time), fixed once the
-- counter has data. Everything else refers to a counter by id.
CREATE TABLE tally.counters (
    id integer GENERATED ALWAYS AS IDENTITY,
    name text NOT NULL,  -- noqa: RF04
    granularities text[] NOT NULL,
    durable boolean NOT NULL DEFAULT FALSE,
    created_at timestamptz NOT NULL DEFAULT now(),
    time_zone text NOT NULL DEFAULT 'UTC',
    CONSTRAINT counters_pkey PRIMARY KEY (id),
    CONSTRAINT counters_name_key UNIQUE (name)
);

COMMENT ON TABLE tally.counters IS 'One row per counter: its buckets and durability';
