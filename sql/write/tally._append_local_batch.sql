-- tally._append_local_batch: the same for a batch of
-- tally.increment_counters (no event ids): its default body appends nothing
-- and returns NULL; a Citus node's own body appends the whole batch when
-- every key's shard is here and every element is valid (then the rows
-- appended: fewer than the elements only when a counter was dropped
-- meanwhile, which the caller refuses), else nothing (NULL). The default
-- is a constant SQL function, inlined where tally.increment_counters calls
-- it: a single node's batch pays no call for it.
CREATE OR REPLACE FUNCTION tally._append_local_batch(
    p_counters text[], p_keys text[], p_deltas bigint[], p_ats timestamptz[], p_bulk boolean
)
RETURNS bigint
LANGUAGE sql
IMMUTABLE
RETURN NULL::bigint;

COMMENT ON FUNCTION tally._append_local_batch(text[], text[], bigint[], timestamptz[], boolean) IS
'Internal: append a valid batch into this node''s shards when every key''s shard is here (Citus; body made per '
'node by tally._make_append_local); NULL otherwise. Returns the rows appended.';
