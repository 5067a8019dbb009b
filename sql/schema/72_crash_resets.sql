-- Crash resets detected (tally._detect_crash_reset): when, when the server
-- started again, and from when fast increments were lost (the last fold that
-- moved deltas before it); acknowledged_* once an operator has reviewed it
-- (tally.acknowledge_crash), which clears tally.health's 'crash' check;
-- node: the Citus worker that crashed (NULL: this server).
CREATE TABLE tally.crash_resets (
    id bigint GENERATED ALWAYS AS IDENTITY,
    detected_at timestamptz NOT NULL DEFAULT now(),
    server_started_at timestamptz NOT NULL,
    lost_since timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by name,
    node text,
    CONSTRAINT crash_resets_pkey PRIMARY KEY (id)
);
