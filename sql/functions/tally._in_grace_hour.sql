-- tally._in_grace_hour: whether the transaction began in the first hour of
-- its UTC day, when a claim of an event id is also made in yesterday's
-- partition of tally.event_ids (see tally._claim_events). Inlined.
CREATE OR REPLACE FUNCTION tally._in_grace_hour()
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN (now() AT TIME ZONE 'UTC') < (now() AT TIME ZONE 'UTC')::date + interval '1 hour';

COMMENT ON FUNCTION tally._in_grace_hour() IS
'Internal: true in the first hour of the UTC day of the transaction start (inlined).';
