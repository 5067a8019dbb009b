-- The findings of tally.check_drift, one row per key found inconsistent
-- (kind internal: granularities disagree) or drifting (kind source: the
-- source of truth disagrees), with the expected and the actual value.
CREATE TABLE tally.drift_checks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    counter_id integer NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    key text NOT NULL,  -- noqa: RF04
    kind text NOT NULL,
    detail text NOT NULL,
    expected bigint,
    actual bigint,
    CONSTRAINT drift_checks_pkey PRIMARY KEY (id),
    CONSTRAINT drift_checks_kind_check CHECK (kind IN ('internal', 'source')),
    CONSTRAINT drift_checks_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE
);

CREATE INDEX drift_checks_counter_idx ON tally.drift_checks (counter_id, checked_at);
