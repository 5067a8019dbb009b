-- tally._valid_key: whether a key is acceptable (non-empty text of at most
-- 512 bytes). The one definition every function checks keys against; a
-- plain SQL expression, inlined where it is used, so the hot path pays no
-- function call. tally._check_key turns a false into the right error.
CREATE OR REPLACE FUNCTION tally._valid_key(p_key text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN p_key IS NOT NULL AND p_key <> '' AND octet_length(p_key) <= 512;

COMMENT ON FUNCTION tally._valid_key(text) IS
'Internal: a key is non-empty text of at most 512 bytes (inlined predicate).';
