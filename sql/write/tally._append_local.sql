-- tally._append_local: a distributed install's fast write (Citus). The
-- body below is the default of every node: it appends nothing and returns
-- NULL ("not here"), so the caller takes its general path. On a Citus node
-- that holds delta shards, tally._make_append_local replaces it with a body
-- of that node's own, which appends one delta row straight into the key's
-- local shard with plain PostgreSQL statements (no distributed planning),
-- and returns NULL for a key whose shard is elsewhere. Never called on a
-- single-node install.
CREATE OR REPLACE FUNCTION tally._append_local(p_counter text, p_key text, p_delta bigint, p_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION tally._append_local(text, text, bigint, timestamptz) IS
'Internal: append one delta row into this node''s shard of p_key (Citus; body made per node by '
'tally._make_append_local); NULL when the key''s shard is not here or the arguments need the general path.';
