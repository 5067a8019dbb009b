-- Crash resets detected (tally._detect_crash_reset): a crash, or the
-- promotion of a standby, emptied the UNLOGGED fast deltas. When it was
-- detected, when the server started again, and the window of fast
-- increments lost: acknowledged from lost_since (before it every
-- acknowledged increment was folded; NULL: since install) to lost_until
-- (the crash restart, or the promotion) and not folded; cause says which;
-- acknowledged_* once an operator has reviewed it (tally.acknowledge_crash),
-- which clears tally.health's 'crash' check; node: the Citus worker that
-- crashed (NULL: this server).
CREATE TABLE tally.crash_resets (
    id bigint GENERATED ALWAYS AS IDENTITY,
    detected_at timestamptz NOT NULL DEFAULT now(),
    server_started_at timestamptz NOT NULL,
    lost_since timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by name,
    node text,
    lost_until timestamptz NOT NULL,
    cause text NOT NULL,
    CONSTRAINT crash_resets_pkey PRIMARY KEY (id),
    CONSTRAINT crash_resets_cause_check CHECK (cause IN ('crash', 'promotion'))
);
