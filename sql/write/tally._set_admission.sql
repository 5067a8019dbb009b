-- tally._set_admission: the writers' admission for a backlog of p_pending
-- deltas under the limits of tally.settings (tally.set_backlog_limits):
-- 2 (refused) from backlog_refuse_at, 1 (slowed) from backlog_delay_at, else
-- 0, written to tally.write_gen (which every increment reads) only when it
-- changes, or, while writers are held back, when the backlog does.
CREATE OR REPLACE FUNCTION tally._set_admission(p_pending bigint)
RETURNS smallint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state smallint;
BEGIN
    SELECT CASE WHEN p_pending >= s.backlog_refuse_at THEN 2
                WHEN p_pending >= s.backlog_delay_at THEN 1
                ELSE 0 END
    INTO v_state
    FROM tally.settings AS s;
    UPDATE tally.write_gen AS w
    SET backlog_state = v_state, backlog_pending = p_pending
    WHERE w.backlog_state <> v_state OR (v_state <> 0 AND w.backlog_pending <> p_pending);
    RETURN v_state;
END;
$$;

COMMENT ON FUNCTION tally._set_admission(bigint) IS
'Internal: set the writers'' admission (tally.write_gen.backlog_state) for a backlog under the backlog limits.';
