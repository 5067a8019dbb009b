-- The generation writers append to (one row, revision 0001 inserts it); the
-- compactor flips it once the other generation is drained, or when a backlog
-- there has held the active one for over 2 s. emptied_at_flip[g + 1]: the
-- flip that found generation g empty while inactive and made it active (a
-- compactor call is done once both are past the flip count it began at,
-- whichever compactor flipped). folded_before[g + 1]: the start of the
-- flip that made generation g inactive, recorded when a later flip found it
-- empty: every increment acknowledged before it is folded (the older of the
-- two bounds what a crash or a promotion can lose, tally._folded_before).
-- backlog_state: the writers' admission, set from the compactor's backlog
-- samples (tally.sample_backlog) under tally.set_backlog_limits: 0
-- admitted, 1 slowed, 2 refused; backlog_pending: that sample. Every
-- increment reads this row: the fast path appends only while admitted.
CREATE TABLE tally.write_gen (
    singleton boolean NOT NULL DEFAULT TRUE,
    gen smallint NOT NULL,
    flips bigint NOT NULL DEFAULT 0,
    flipped_at timestamptz NOT NULL DEFAULT now(),
    emptied_at_flip bigint[] NOT NULL DEFAULT '{0,0}',
    folded_before timestamptz[] NOT NULL DEFAULT '{NULL,NULL}',
    backlog_state smallint NOT NULL DEFAULT 0,
    backlog_pending bigint NOT NULL DEFAULT 0,
    CONSTRAINT write_gen_pkey PRIMARY KEY (singleton),
    CONSTRAINT write_gen_singleton_check CHECK (singleton),
    CONSTRAINT write_gen_gen_check CHECK (gen IN (0, 1)),
    CONSTRAINT write_gen_backlog_state_check CHECK (backlog_state IN (0, 1, 2))
);
