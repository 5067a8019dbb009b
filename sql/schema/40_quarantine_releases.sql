-- What became of deltas set aside in tally.quarantine: every call of
-- tally.release_quarantined, per key: re-applied (moved back to the deltas,
-- for the next fold) or discarded, how many, their sum, when and by whom.
CREATE TABLE tally.quarantine_releases (
    id bigint GENERATED ALWAYS AS IDENTITY,
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    action text NOT NULL,  -- noqa: RF04
    deltas bigint NOT NULL,
    delta_sum numeric NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now(),
    released_by name NOT NULL DEFAULT session_user,
    CONSTRAINT quarantine_releases_pkey PRIMARY KEY (id),
    CONSTRAINT quarantine_releases_action_check CHECK (action IN ('apply', 'discard'))
);
