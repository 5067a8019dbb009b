-- tally._window_refuse: tally.counter_window's refusal of a window it
-- cannot cut into kept buckets (22023). It names the first bound at fault,
-- p_from, then p_to: the finest granularity kept complete at its age and
-- that granularity's boundaries around it; for a bound older than every
-- bucket kept, the oldest time a window can start at. A window whose bounds
-- are both on such boundaries but still cannot be cut (granularities kept
-- for different ages that do not nest, a zone's clock change at a bound)
-- gets the general message. p_grans and p_starts are the
-- counter's granularities, coarsest first, and from when each is complete.
CREATE OR REPLACE FUNCTION tally._window_refuse(
    p_fn text, p_counter tally.counters, p_grans text[], p_starts timestamptz[], p_from timestamptz, p_to timestamptz
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_zone text := p_counter.time_zone;
    v_finest text;
    v_oldest timestamptz;
    v_bound text;
    v_at timestamptz;
BEGIN
    IF coalesce(cardinality(p_grans), 0) = 0 THEN
        RAISE EXCEPTION '%: counter "%" keeps no buckets, only the all-time total', p_fn, p_counter.name
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use tally.counter_value()';
    END IF;
    FOREACH v_bound IN ARRAY ARRAY['p_from', 'p_to'] LOOP
        v_at := CASE v_bound WHEN 'p_from' THEN p_from ELSE p_to END;
        v_finest := NULL;
        FOR i IN REVERSE cardinality(p_grans) .. 1 LOOP
            IF p_starts[i] <= v_at THEN
                v_finest := p_grans[i];
                EXIT;
            END IF;
        END LOOP;
        IF v_finest IS NULL THEN
            SELECT min(s) INTO v_oldest FROM unnest(p_starts) AS s;
            RAISE EXCEPTION '%: % % is older than any bucket counter "%" keeps', p_fn, v_bound, v_at, p_counter.name
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('a window can start at %s at the earliest (see tally.retention_policies)',
                                    v_oldest);
        END IF;
        IF date_trunc(v_finest, v_at, v_zone) <> v_at THEN
            RAISE EXCEPTION '%: % % is not on a boundary of the % buckets counter "%" keeps for that time (time zone %)',
                p_fn, v_bound, v_at, v_finest, p_counter.name, v_zone
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'a window is read from whole buckets: each bound must begin or end one',
                      HINT = format('the nearest boundaries are %s and %s',
                                    date_trunc(v_finest, v_at, v_zone), tally._window_ceil(v_finest, v_at, v_zone));
        END IF;
    END LOOP;
    RAISE EXCEPTION '%: the window [%, %) cannot be cut into buckets counter "%" keeps', p_fn, p_from, p_to,
        p_counter.name
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'see tally.retention_policies for how long each granularity is kept';
END;
$$;

COMMENT ON FUNCTION tally._window_refuse(text, tally.counters, text[], timestamptz[], timestamptz, timestamptz) IS
'Internal: tally.counter_window''s 22023 refusal of a bound off the bucket boundaries kept, naming the nearest ones.';
