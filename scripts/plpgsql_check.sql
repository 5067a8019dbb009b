-- Run plpgsql_check over every PL/pgSQL function in schema tally; fail on
-- any error or warning it reports. Used by `make lint`.
CREATE EXTENSION IF NOT EXISTS plpgsql_check;

DO $$
DECLARE
    v_fn regprocedure;
    v_msg text;
    v_problems integer := 0;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace = 'tally'::regnamespace AND l.lanname = 'plpgsql'
        ORDER BY 1::text
    LOOP
        FOR v_msg IN
            SELECT * FROM plpgsql_check_function(v_fn, fatal_errors => false, extra_warnings => false)
        LOOP
            RAISE WARNING '%: %', v_fn, v_msg;
            v_problems := v_problems + 1;
        END LOOP;
    END LOOP;
    IF v_problems > 0 THEN
        RAISE EXCEPTION 'plpgsql_check: % problem(s) in tally functions', v_problems;
    END IF;
    RAISE NOTICE 'plpgsql_check: every tally PL/pgSQL function is clean';
END;
$$;
