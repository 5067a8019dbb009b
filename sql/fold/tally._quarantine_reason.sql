-- tally._quarantine_reason: why a fold sets deltas aside, in one wording
-- for both modes (tally.quarantine.reason, shown by tally.quarantined).
CREATE OR REPLACE FUNCTION tally._quarantine_reason()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN 'folding this key would overflow bigint (its total, a minute or a bucket)';

COMMENT ON FUNCTION tally._quarantine_reason() IS
'Internal: the reason recorded with deltas a fold set aside (they would overflow bigint).';
