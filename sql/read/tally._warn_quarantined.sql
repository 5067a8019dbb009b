-- tally._warn_quarantined: a read of a key some of whose deltas a fold set
-- aside (folding them would have overflowed bigint) answers without them:
-- say so, and where to see and release them. p_key NULL: a read over many
-- keys of the counter (tally.top_keys), p_deltas of which are set aside.
-- A WARNING, never an error: the value read is what is counted.
CREATE OR REPLACE FUNCTION tally._warn_quarantined(p_fn text, p_counter text, p_key text, p_deltas bigint)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key IS NULL THEN
        RAISE WARNING '%: counter "%" has % deltas set aside, not counted in these values', p_fn, p_counter, p_deltas
            USING DETAIL = 'folding them would overflow bigint; tally.quarantined lists them by key',
                  HINT = format('an admin releases them with tally.release_quarantined(%L, <key>, ''apply'') '
                                'once they fit, or with ''discard''', p_counter);
        RETURN;
    END IF;
    RAISE WARNING '%: key "%" of counter "%" has % deltas set aside, not counted in this value', p_fn, p_key, p_counter,
        p_deltas
        USING DETAIL = 'folding them would overflow bigint; tally.quarantined lists them',
              HINT = format('an admin releases them with tally.release_quarantined(%L, %L, ''apply'') '
                            'once they fit, or with ''discard''', p_counter, p_key);
END;
$$;

COMMENT ON FUNCTION tally._warn_quarantined(text, text, text, bigint) IS
'Internal: WARNING that a read leaves out deltas set aside in tally.quarantine, and how to release them.';
