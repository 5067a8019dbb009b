-- tally._claim_event: claim one event id of a counter for one increment
-- (of key p_key), on one node: tally._claim_events for a single pair (an id
-- counts once per counter, whatever the key). Returns false if the id was
-- applied within the window, or is claimed by a transaction that commits
-- first. PL/pgSQL, so its statement's plan is kept for the session.
-- (A distributed install claims beside the key: tally._claim_event.citus.sql.)
CREATE OR REPLACE FUNCTION tally._claim_event(p_counter_id integer, p_key text, p_event_id text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM FROM tally._claim_events(ARRAY[p_counter_id], ARRAY[p_event_id]);
    RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION tally._claim_event(integer, text, text) IS
'Internal: claim (counter, event id) for one increment of p_key; false if already applied within the window.';
