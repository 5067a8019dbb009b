-- tally._promoted_at: when this server was promoted from a standby to a
-- primary, or NULL if it has not been since it started. A promotion ends
-- recovery on a new timeline and writes that timeline's history file
-- (pg_wal/<timeline>.history) as it does; the file's modification time, to
-- the second, rounded up, bounds the promotion from above. (A crash
-- restart starts the postmaster instead: pg_postmaster_start_time().)
-- Reading pg_wal needs the superuser who owns this function; where that is
-- refused, NULL (the crash reset is then reported up to the server start).
CREATE OR REPLACE FUNCTION tally._promoted_at()
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_timeline text;
    v_at timestamptz;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN NULL;
    END IF;
    v_timeline := left(pg_walfile_name(pg_current_wal_lsn()), 8);
    IF v_timeline = '00000001' THEN
        RETURN NULL;  -- never promoted: the first timeline has no history file
    END IF;
    BEGIN
        SELECT f.modification + interval '1 second' INTO v_at
        FROM pg_stat_file('pg_wal/' || v_timeline || '.history', true) AS f;
    EXCEPTION WHEN insufficient_privilege THEN
        RETURN NULL;
    END;
    IF v_at IS NULL OR v_at <= pg_postmaster_start_time() THEN
        RETURN NULL;  -- promoted before this server last started
    END IF;
    RETURN v_at;
END;
$$;

COMMENT ON FUNCTION tally._promoted_at() IS
'Internal: when this server was promoted from a standby since it started (its timeline''s history file), or NULL.';
