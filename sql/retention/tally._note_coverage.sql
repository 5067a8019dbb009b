-- tally._note_coverage: before a counter's retention of a granularity
-- changes, remember from when its buckets are complete: the oldest bucket it
-- keeps now. Lengthening the retention later does not bring back buckets
-- that were skipped or dropped meanwhile, so drift checks must not expect
-- them. Nothing to remember while nothing of the counter was ever folded.
CREATE OR REPLACE FUNCTION tally._note_coverage(p_counter_id integer, p_granularity text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- (PL/pgSQL: on a distributed install Citus plans no parameterized SQL
    -- function that reads a distributed table, tally.totals here; and
    -- Citus 13.2 cannot plan an EXISTS (SELECT FROM ...) of one: SELECT 1.)
    IF EXISTS (SELECT 1 FROM tally.totals AS t WHERE t.counter_id = p_counter_id) THEN
        INSERT INTO tally.coverage AS cv (counter_id, granularity, complete_from)
        VALUES (p_counter_id, p_granularity, tally._cutoff(p_counter_id, p_granularity))
        ON CONFLICT (counter_id, granularity)
        DO UPDATE SET complete_from = greatest(cv.complete_from, excluded.complete_from);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._note_coverage(integer, text) IS
'Internal: record from when a counter''s buckets of a granularity are complete, before its retention changes.';
