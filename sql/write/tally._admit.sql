-- tally._admit: what a writer does when the backlog limits hold writers
-- back (tally.write_gen.backlog_state, set by the compactor's samples):
-- slowed, it sleeps, from 1 ms at backlog_delay_at up to 100 ms as the
-- backlog nears backlog_refuse_at (10 ms without a refuse limit), then
-- goes on; refused, it raises 53400 and appends nothing. A no-op while
-- writers are admitted. p_fn names the function called; p_n the increments.
CREATE OR REPLACE FUNCTION tally._admit(p_fn text, p_n bigint)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state smallint;
    v_pending bigint;
    v_delay_at bigint;
    v_refuse_at bigint;
BEGIN
    SELECT w.backlog_state, w.backlog_pending, s.backlog_delay_at, s.backlog_refuse_at
    INTO v_state, v_pending, v_delay_at, v_refuse_at
    FROM tally.write_gen AS w CROSS JOIN tally.settings AS s;
    IF v_state = 2 THEN
        RAISE EXCEPTION '%: the backlog of % deltas is over the limit of % (tally.set_backlog_limits): % increments refused',
            p_fn, v_pending, v_refuse_at, p_n
            USING ERRCODE = 'configuration_limit_exceeded',
                  HINT = 'the compactor folds less than writers add: retry later, start more compactors, '
                         'or raise the limit; see tally.health';
    ELSIF v_state = 1 THEN
        PERFORM pg_sleep(CASE
            WHEN v_refuse_at IS NULL OR v_refuse_at <= v_delay_at THEN 0.01
            ELSE 0.001 + 0.099 * least(1.0, greatest(0.0, (v_pending - v_delay_at)::float8 / (v_refuse_at - v_delay_at)))
        END);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._admit(text, bigint) IS
'Internal: a writer held back by the backlog limits sleeps (slowed) or is refused with 53400.';
