-- tally._valid_event_id: whether an event id is acceptable (non-empty text
-- of at most 256 bytes). The one definition increment_counter and
-- increment_counters check ids against; inlined where it is used.
-- tally._check_event_id turns a false into the right error.
CREATE OR REPLACE FUNCTION tally._valid_event_id(p_event_id text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN p_event_id IS NOT NULL AND p_event_id <> '' AND octet_length(p_event_id) <= 256;

COMMENT ON FUNCTION tally._valid_event_id(text) IS
'Internal: an event id is non-empty text of at most 256 bytes (inlined predicate).';
