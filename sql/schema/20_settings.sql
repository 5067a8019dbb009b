-- tally: settings (tally.set_event_window). One row (revision 0002 inserts
-- it): event_window_days is how many days event ids are remembered;
-- distributed: whether tally is distributed on Citus (revision 0004);
-- backlog_delay_at / backlog_refuse_at: the pending deltas from which
-- writers are slowed / refused (tally.set_backlog_limits; NULL: never).
CREATE TABLE tally.settings (
    singleton boolean NOT NULL DEFAULT TRUE,
    event_window_days integer NOT NULL DEFAULT 7,
    distributed boolean NOT NULL DEFAULT FALSE,  -- noqa: RF04
    backlog_delay_at bigint,
    backlog_refuse_at bigint,
    CONSTRAINT settings_pkey PRIMARY KEY (singleton),
    CONSTRAINT settings_singleton_check CHECK (singleton),
    CONSTRAINT settings_event_window_days_check CHECK (event_window_days BETWEEN 1 AND 366),
    CONSTRAINT settings_backlog_check CHECK (backlog_delay_at < backlog_refuse_at)
);

COMMENT ON TABLE tally.settings IS 'tally: settings (tally.set_event_window)';
