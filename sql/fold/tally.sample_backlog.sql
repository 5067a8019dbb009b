-- tally.sample_backlog: record how many deltas are pending now in
-- tally.backlog_samples, at most once every 10 s, or every 2 s while
-- writers are held back (whichever compactor comes first; it returns NULL
-- otherwise), forget samples older than an hour, and set the writers'
-- admission from the sample and the limits of tally.set_backlog_limits
-- (tally.write_gen.backlog_state: 0 admitted, 1 slowed, 2 refused). The
-- sample is a count of the pending deltas, up to 10 million (or the refuse
-- limit, if higher) on a single node: about 40 ms per million counted, at
-- most once every 10 s. (The statistics' live-tuple counts would cost
-- nothing, but a compactor's own folds reach them only when its CALL ends.)
-- Every compactor calls it after each step, in a transaction of its own
-- (the row of tally.write_gen it may update is held for microseconds, not
-- for a fold). Returns the sample taken.
CREATE OR REPLACE FUNCTION tally.sample_backlog()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pending bigint;
BEGIN
    IF EXISTS (
        SELECT FROM tally.backlog_samples AS s
        WHERE s.sampled_at > now() - CASE WHEN (SELECT w.backlog_state FROM tally.write_gen AS w) = 0
                                          THEN interval '10 seconds' ELSE interval '2 seconds' END
    ) THEN
        RETURN NULL;
    END IF;
    IF tally._distributed() THEN
        v_pending := tally._pending();  -- (counted on the workers)
    ELSE
        SELECT count(*) INTO v_pending
        FROM (
            SELECT FROM tally.delta AS d
            LIMIT (SELECT greatest(10000000, coalesce(st.backlog_refuse_at, st.backlog_delay_at, 0) + 1)
                   FROM tally.settings AS st)
        ) AS d;
    END IF;
    INSERT INTO tally.backlog_samples (sampled_at, pending) VALUES (now(), v_pending)
    ON CONFLICT (sampled_at) DO NOTHING;
    DELETE FROM tally.backlog_samples AS s WHERE s.sampled_at < now() - interval '1 hour';
    PERFORM tally._set_admission(v_pending);
    RETURN v_pending;
END;
$$;

COMMENT ON FUNCTION tally.sample_backlog() IS
'Sample the pending deltas (at most every 10 s, the last hour kept) and set the writers'' admission from it.';
