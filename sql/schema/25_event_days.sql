-- Per UTC day of the event-id window, an xid assigned no earlier than that
-- day began: while a snapshot's xmin is older, a transaction that began the
-- day before may still be running (tally._claim_days).
CREATE TABLE tally.event_days (
    day date NOT NULL,  -- noqa: RF04
    first_xid xid8 NOT NULL,
    CONSTRAINT event_days_pkey PRIMARY KEY (day)
);
