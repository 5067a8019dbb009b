-- Deltas set aside because folding them would overflow bigint (poison never
-- wedges the fold): tally._quarantine_overflow moves a poison key's deltas
-- of the failing chunk here. Its folded value plus these deltas is what was
-- sent (tally.quarantined, tally.health).
CREATE TABLE tally.quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY,
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    delta bigint NOT NULL,
    at timestamptz NOT NULL,  -- noqa: RF04
    written_at timestamptz NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL,
    CONSTRAINT quarantine_pkey PRIMARY KEY (id)
);

-- Reads probe it per key (a WARNING when a key has deltas set aside) and
-- tally.release_quarantined takes a key's rows.
CREATE INDEX quarantine_counter_id_key_idx ON tally.quarantine (counter_id, key);
