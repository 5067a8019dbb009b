-- tally._partition_lock_key: the advisory lock key that serializes the
-- creation of rollup partitions by folds of different slices running at
-- once (tally._ensure_partitions).
CREATE OR REPLACE FUNCTION tally._partition_lock_key()
RETURNS bigint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN 7361756479000002;

COMMENT ON FUNCTION tally._partition_lock_key() IS
'Internal: advisory lock key serializing rollup partition creation among parallel folds.';
