-- tally._no_event_partition: the error of a claim of an event id when no
-- partition of tally.event_ids begins on or before today (maintenance has
-- never run since the install, or its partitions were dropped by hand).
CREATE OR REPLACE FUNCTION tally._no_event_partition(p_fn text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '%: the idempotency store has no partition for today', p_fn
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'run SELECT * FROM tally.maintain() (it creates them), and keep a compactor or maintenance scheduled';
END;
$$;

COMMENT ON FUNCTION tally._no_event_partition(text) IS
'Internal: raise the error of a claim of an event id made while no partition of tally.event_ids holds today.';
