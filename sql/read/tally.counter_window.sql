-- tally.counter_window: the total of a key's increments with
-- p_from <= at < p_to (the last 7 days, the last 24 hours), folded plus
-- pending, in one statement (one snapshot).
--
-- The folded part is read from whole buckets (tally._window_parts): the
-- window is cut into the coarsest buckets that fit inside it, then finer
-- ones at its edges (a week of days, their edges in hours, theirs in
-- minutes), in the counter's time zone, between exact bucket starts (where
-- a zone's clock repeats or skips, finer buckets), each granularity only
-- where the counter keeps it complete (its retention, tally.coverage): a
-- handful of index range scans whatever the window's length, each on the
-- rollup partitions it needs. Pending deltas are summed by their own time,
-- exactly. Retention is judged at the clock's time, not the transaction's
-- start: a fold this read can see started before this statement, so it
-- skipped no bucket this read takes as kept.
--
-- So the bounds must lie on bucket boundaries of a granularity the counter
-- keeps complete at that age (a minute boundary for the last day of a
-- counter keeping minutes for a day, a day boundary before that, ...):
-- otherwise 22023, naming the bound and the nearest boundaries around it
-- (or, for a bound older than any bucket kept, the oldest usable time).
-- On a hot standby the pending deltas are the logged ones (see
-- tally.counter_value); deltas set aside (tally.quarantined) are left out
-- with a WARNING.
CREATE OR REPLACE FUNCTION tally.counter_window(
    p_counter text,
    p_key text,
    p_from timestamptz,
    p_to timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.counter_window';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_zone text := v_counter.time_zone;
    v_grans text[];           -- the counter's granularities, coarsest first
    v_starts timestamptz[];   -- from when each is kept complete
    v_parts text[];
    v_value bigint;
    v_quarantined bigint;
BEGIN
    PERFORM tally._check_key(c_fn, p_key);
    PERFORM tally._check_range(c_fn, p_from, p_to);
    IF NOT (isfinite(p_from) AND isfinite(p_to)) THEN
        RAISE EXCEPTION '%: the window [%, %) is not finite', c_fn, p_from, p_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass finite bounds; the all-time total is tally.counter_value()';
    END IF;
    SELECT array_agg(g.name ORDER BY g.ord DESC),
           array_agg(greatest(tally._cutoff(v_counter.id, g.name, clock_timestamp() + interval '1 second'),
                              tally._window_ceil(g.name, cv.complete_from, v_zone)) ORDER BY g.ord DESC)
    INTO v_grans, v_starts
    FROM tally.granularities AS g
    LEFT JOIN tally.coverage AS cv ON cv.counter_id = v_counter.id AND cv.granularity = g.name
    WHERE g.name = ANY (v_counter.granularities);

    v_parts := tally._window_parts(v_zone, v_grans, v_starts, p_from, p_to);
    IF v_parts IS NULL THEN
        PERFORM tally._window_refuse(c_fn, v_counter, v_grans, v_starts, p_from, p_to);
    END IF;

    EXECUTE format(
        $q$
        SELECT tally._as_bigint($5, $6, $2,
                   coalesce((SELECT sum(w.value) FROM (%1$s) AS w), 0)
                   + coalesce((SELECT sum(d.delta) FROM tally.delta AS d
                               WHERE d.counter_id = $1 AND d.key = $2 AND d.at >= $3 AND d.at < $4%2$s), 0)),
               (SELECT count(*) FROM tally.quarantine AS q WHERE q.counter_id = $1 AND q.key = $2)
        $q$,
        CASE WHEN cardinality(v_parts) = 0 THEN 'SELECT NULL::bigint AS value WHERE false'
             ELSE array_to_string(v_parts, ' UNION ALL ') END,
        tally._replica_filter('d'))
    INTO v_value, v_quarantined
    USING v_counter.id, p_key, p_from, p_to, c_fn, p_counter;
    IF v_quarantined > 0 THEN
        PERFORM tally._warn_quarantined(c_fn, p_counter, p_key, v_quarantined);
    END IF;
    RETURN v_value;
END;
$$;

COMMENT ON FUNCTION tally.counter_window(text, text, timestamptz, timestamptz) IS
'Total of counter p_counter for p_key over [p_from, p_to), from whole buckets plus increments not folded yet; '
'the bounds must lie on bucket boundaries the counter keeps at that age.';
