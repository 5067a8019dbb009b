-- tally._track_refuse: the error a tracked table's row gets when its counter
-- cannot take it: a key over 512 bytes, or a timestamp (p_at_column) before
-- 1970 or more than a day ahead. Raised by the table's trigger (the
-- application's statement fails, so nothing is counted wrong) and by the
-- backfill (the tracking is refused). Never returns.
CREATE OR REPLACE FUNCTION tally._track_refuse(p_counter_id integer, p_key text, p_at timestamptz)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_what text;
BEGIN
    SELECT format('tally: table %s, counted by counter "%s"', t.table_name::regclass, c.name) INTO v_what
    FROM tally.tracked_tables AS t
    JOIN tally.counters AS c ON c.id = t.counter_id
    WHERE t.counter_id = p_counter_id;
    IF NOT tally._valid_key(p_key) THEN
        RAISE EXCEPTION '%: a row''s key is % bytes long, over the 512 a counter key may have', v_what,
            octet_length(p_key)
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('key starts %L', left(p_key, 40)),
                  HINT = 'keep the key column''s values to 512 bytes, or untrack the table (tally.untrack_table)';
    END IF;
    RAISE EXCEPTION '%: a row''s timestamp % is outside what a counter takes (from 1970 to a day ahead)', v_what,
        p_at
        USING ERRCODE = 'datetime_field_overflow',
              HINT = 'fix the row''s timestamp, or untrack the table (tally.untrack_table)';
END;
$$;

COMMENT ON FUNCTION tally._track_refuse(integer, text, timestamptz) IS
'Internal: refuse a tracked table''s row its counter cannot take (key over 512 bytes, timestamp out of range).';
