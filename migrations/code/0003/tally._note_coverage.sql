-- tally._note_coverage: before a counter's retention of a granularity
-- changes, remember from when its buckets are complete: the oldest bucket it
-- keeps now. Lengthening the retention later does not bring back buckets
-- that were skipped or dropped meanwhile, so drift checks must not expect
-- them. Nothing to remember while nothing of the counter was ever folded.
CREATE OR REPLACE FUNCTION tally._note_coverage(p_counter_id integer, p_granularity text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO tally.coverage AS cv (counter_id, granularity, complete_from)
    SELECT
        p_counter_id,
        p_granularity,
        tally._cutoff(p_counter_id, p_granularity) AS complete_from
    WHERE
        EXISTS (
            SELECT FROM tally.totals AS t
            WHERE t.counter_id = _note_coverage.p_counter_id  -- noqa: RF01
        )
    ON CONFLICT (counter_id, granularity)
    DO UPDATE SET complete_from = greatest(cv.complete_from, excluded.complete_from);
END;

COMMENT ON FUNCTION tally._note_coverage(integer, text) IS
'Internal: record from when a counter''s buckets of a granularity are complete, before its retention changes.';
