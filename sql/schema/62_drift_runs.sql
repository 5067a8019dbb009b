-- One row per tally.check_drift run of a counter: how many keys it checked,
-- how many were inconsistent or drifting, the largest drift.
CREATE TABLE tally.drift_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    counter_id integer NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    keys_checked integer NOT NULL,
    inconsistent_keys integer NOT NULL,
    drifting_keys integer,
    max_abs_drift bigint,
    CONSTRAINT drift_runs_pkey PRIMARY KEY (id),
    CONSTRAINT drift_runs_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE
);

CREATE INDEX drift_runs_counter_idx ON tally.drift_runs (counter_id, checked_at);
