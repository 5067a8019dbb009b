-- tally._fold_lock_key: the advisory lock key that serializes folds (and
-- anything else that writes rollups) in this database.
CREATE OR REPLACE FUNCTION tally._fold_lock_key()
RETURNS bigint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN 7361756479000001;

COMMENT ON FUNCTION tally._fold_lock_key() IS
'Internal: advisory lock key serializing folds; one fold writes rollups at a time.';
