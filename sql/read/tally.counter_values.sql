-- tally.counter_values: the all-time totals of a page of keys (a feed's like,
-- follower or view counts) in one call: one row per key asked for, in the
-- order given (a key asked for twice answers twice), 0 for a key never
-- incremented. As tally.counter_value, folded plus pending in one statement
-- (one snapshot): one primary-key probe of the totals and one index probe
-- of the pending deltas per key. At most 10,000 keys a call (54000 beyond). On a hot standby the
-- pending deltas are the logged ones (see tally.counter_value). Keys with
-- deltas set aside (tally.quarantined) are answered without them, with one
-- WARNING for the call; a key whose value overflows bigint fails the call
-- naming it (22003), as tally.counter_value does.
CREATE OR REPLACE FUNCTION tally.counter_values(p_counter text, p_keys text[])
RETURNS TABLE (key text, value bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.counter_values';
    c_max constant integer := 10000;
    v_id integer := (tally._lookup_counter(c_fn, p_counter)).id;
    v_bad integer;
    v_bad_key text;
    v_quarantined bigint;
BEGIN
    IF p_keys IS NULL THEN
        RAISE EXCEPTION '%: keys must not be NULL', c_fn
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass an array of keys, e.g. ARRAY[''42'', ''43'']';
    END IF;
    IF cardinality(p_keys) > c_max THEN
        RAISE EXCEPTION '%: % keys are over the limit of % a call', c_fn, cardinality(p_keys), c_max
            USING ERRCODE = 'program_limit_exceeded', HINT = 'read a page of keys at a time';
    END IF;
    -- (the element's position in the order given, whatever the array's bounds)
    SELECT k.ord, k.key INTO v_bad, v_bad_key FROM unnest(p_keys) WITH ORDINALITY AS k (key, ord)
    WHERE NOT tally._valid_key(k.key) ORDER BY k.ord LIMIT 1;
    IF v_bad IS NOT NULL THEN
        PERFORM tally._check_key(format('%s: element %s', c_fn, v_bad), v_bad_key);
    END IF;
    IF EXISTS (SELECT 1 FROM tally.quarantine AS q WHERE q.counter_id = v_id) THEN  -- (one probe, mostly; Citus needs a target)
        SELECT count(*) INTO v_quarantined FROM tally.quarantine AS q
        WHERE q.counter_id = v_id AND q.key = ANY (p_keys);
    END IF;
    IF v_quarantined > 0 THEN
        PERFORM tally._warn_quarantined(c_fn, p_counter, NULL, v_quarantined);
    END IF;
    -- The keys' totals and pending deltas are summed where they are (on
    -- Citus one query per shard holding some of them: key = ANY prunes the
    -- others) before they meet the list of keys asked for.
    RETURN QUERY EXECUTE format(
        $q$
        SELECT k.key, tally._as_bigint($3, $4, k.key, coalesce(v.value, 0))
        FROM unnest($2) WITH ORDINALITY AS k (key, ord)
        LEFT JOIN (
            SELECT s.key, sum(s.value) AS value
            FROM (
                SELECT t.key, t.value::numeric AS value
                FROM tally.totals AS t
                WHERE t.counter_id = $1 AND t.key = ANY ($2)
                UNION ALL
                SELECT d.key, d.delta
                FROM tally.delta AS d
                WHERE d.counter_id = $1 AND d.key = ANY ($2)%1$s
            ) AS s
            GROUP BY s.key
        ) AS v ON v.key = k.key
        ORDER BY k.ord
        $q$, tally._replica_filter('d'))
    USING v_id, p_keys, c_fn, p_counter;
END;
$$;

COMMENT ON FUNCTION tally.counter_values(text, text[]) IS
'All-time totals of counter p_counter for a page of keys, one row per key in the order given, '
'including increments not folded yet (on a hot standby: the logged ones).';
