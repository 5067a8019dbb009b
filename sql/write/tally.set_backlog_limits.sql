-- tally.set_backlog_limits: hold writers back while the compactor is behind
-- (off by default). From p_delay_at pending deltas every increment call
-- sleeps a little before it appends (1 ms, growing to 100 ms as the backlog
-- nears p_refuse_at); from p_refuse_at every increment call is refused with
-- 53400 and appends nothing, until the compactor has folded the backlog
-- below the limit again. NULL turns a limit off. The backlog is the
-- compactor's latest sample (tally.sample_backlog, at most every 10 s), so
-- writers are held back within seconds of the limit, and the admission is
-- set again at once from that sample.
CREATE OR REPLACE FUNCTION tally.set_backlog_limits(p_delay_at bigint, p_refuse_at bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.set_backlog_limits';
BEGIN
    PERFORM tally._coordinator_only(c_fn);
    IF p_delay_at < 1 OR p_refuse_at < 1 THEN
        RAISE EXCEPTION '%: a limit must be at least 1 delta, got % and %', c_fn,
            coalesce(p_delay_at::text, 'NULL'), coalesce(p_refuse_at::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pending deltas, e.g. 5000000 and 20000000; NULL turns a limit off';
    END IF;
    IF p_delay_at >= p_refuse_at THEN
        RAISE EXCEPTION '%: the delay limit % must be below the refuse limit %', c_fn, p_delay_at, p_refuse_at
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'writers are slowed first, then refused: e.g. 5000000 and 20000000';
    END IF;
    UPDATE tally.settings AS s SET backlog_delay_at = p_delay_at, backlog_refuse_at = p_refuse_at;
    PERFORM tally._set_admission(coalesce(
        (SELECT b.pending FROM tally.backlog_samples AS b ORDER BY b.sampled_at DESC LIMIT 1), 0));
END;
$$;

COMMENT ON FUNCTION tally.set_backlog_limits(bigint, bigint) IS
'Slow writers from p_delay_at pending deltas and refuse them (53400) from p_refuse_at; NULL turns a limit off.';
