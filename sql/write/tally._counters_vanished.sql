-- tally._counters_vanished: a batch (tally.increment_counters) checked its
-- counters, then wrote fewer elements than it holds: a counter was dropped
-- in between. Refuse the whole batch as an unknown counter (42704), naming
-- the first counter of the batch that is gone (or, made again since, the
-- ones made since this call began, else all of the batch's), so the
-- caller's transaction (and the rows written so far) is rolled back: all
-- or nothing.
CREATE OR REPLACE FUNCTION tally._counters_vanished(p_fn text, p_counters text[])
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
BEGIN
    SELECT format('"%s"', u.n) INTO v_name
    FROM unnest(p_counters) WITH ORDINALITY AS u (n, i)
    WHERE NOT EXISTS (SELECT FROM tally.counters AS c WHERE c.name = u.n)
    ORDER BY u.i
    LIMIT 1;
    IF v_name IS NULL THEN
        SELECT string_agg(format('"%s"', c.name), ' or ' ORDER BY c.name) INTO v_name
        FROM tally.counters AS c
        WHERE c.name = ANY (p_counters) AND c.created_at >= statement_timestamp();
    END IF;
    IF v_name IS NULL THEN
        SELECT string_agg(DISTINCT format('"%s"', u.n), ' or ') INTO v_name FROM unnest(p_counters) AS u (n);
    END IF;
    RAISE EXCEPTION '%: counter % was dropped while the batch was written', p_fn, v_name
        USING ERRCODE = 'undefined_object',
              HINT = 'nothing of this batch was applied; create the counter (tally.create_counter) and send it again';
END;
$$;

COMMENT ON FUNCTION tally._counters_vanished(text, text[]) IS
'Internal: refuse a batch one of whose counters was dropped while it was written (42704, all or nothing).';
