-- tally.create_counter: register a counter, the bucket granularities it keeps
-- (the all-time total is always kept) and whether its pending deltas are
-- durable (logged shards: nothing acknowledged is lost in a crash) or fast
-- (unlogged shards: a crash loses what was not yet folded), and the time
-- zone whose wall clock its buckets follow (UTC by default; an IANA name
-- such as 'America/New_York': local days, ISO weeks, months and hours,
-- across daylight-saving changes).
CREATE OR REPLACE FUNCTION tally.create_counter(
    p_name text,
    p_granularities text[] DEFAULT '{minute,hour,day,week,month}',
    p_durable boolean DEFAULT FALSE,
    p_time_zone text DEFAULT 'UTC'
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad text;
    v_granularities text[];
    v_zone text;
BEGIN
    PERFORM tally._coordinator_only('tally.create_counter');
    IF p_name IS NULL OR p_name = '' THEN
        RAISE EXCEPTION 'tally.create_counter: name must not be NULL or empty'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'name it after what it counts, e.g. ''note_views''';
    END IF;
    IF p_name !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'tally.create_counter: invalid counter name "%"', p_name
            USING ERRCODE = 'invalid_name',
                  HINT = 'use 1 to 63 characters: a lowercase letter, then lowercase letters, digits, _ . : -';
    END IF;
    IF p_granularities IS NULL OR array_position(p_granularities, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'tally.create_counter: granularities of "%" must not be NULL or hold NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass e.g. ''{hour,day}'', or ''{}'' to keep only the all-time total';
    END IF;
    IF p_durable IS NULL THEN
        RAISE EXCEPTION 'tally.create_counter: durable flag of "%" must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass true (logged deltas) or false (fast, unlogged deltas)';
    END IF;
    SELECT u.g INTO v_bad
    FROM unnest(p_granularities) AS u (g)
    WHERE NOT EXISTS (SELECT FROM tally.granularities AS g WHERE g.name = u.g)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'tally.create_counter: unknown granularity "%" for counter "%"', v_bad, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use any of minute, hour, day, week, month (the all-time total is always kept)';
    END IF;
    v_zone := tally._time_zone('tally.create_counter', p_time_zone);
    SELECT coalesce(array_agg(g.name ORDER BY g.ord), '{}') INTO v_granularities
    FROM tally.granularities AS g
    WHERE g.name = ANY (p_granularities);

    INSERT INTO tally.counters (name, granularities, durable, time_zone)
    VALUES (p_name, v_granularities, p_durable, v_zone)
    ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tally.create_counter: counter "%" already exists', p_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'pick another name, or tally.drop_counter() it first';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally.create_counter(text, text[], boolean, text) IS
'Register a counter: its granularities (minute, hour, day, week, month; the total is always kept), durability and time zone.';
