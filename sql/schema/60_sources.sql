-- A counter's source of truth (tally.set_source): the query that answers a
-- key's true value, and who registered it. It runs as
-- tally.source_<counter id>(text), a SECURITY DEFINER function owned by that
-- role, never with tally's privileges.
CREATE TABLE tally.sources (
    counter_id integer NOT NULL,
    query text NOT NULL,
    registered_by name NOT NULL DEFAULT current_user,
    registered_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sources_pkey PRIMARY KEY (counter_id),
    CONSTRAINT sources_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE
);
