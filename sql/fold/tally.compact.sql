-- tally.compact: fold everything pending now. PL/Python orchestrates
-- compactor steps (tally._fold_step), each its own committed transaction; a
-- step hitting a deadlock, serialization failure, lock timeout or statement
-- timeout is rolled back (its deltas stay pending) and retried with
-- exponential backoff and jitter, up to p_max_attempts. Every fold and every
-- failed attempt is recorded in tally.fold_runs. Call it outside an explicit
-- transaction block. With p_slices > 1 it folds slice p_slice only
-- (tally._slice), beside calls folding the other slices at the same time,
-- and returns once every slice's deltas pending at the call are folded.
-- It is SECURITY INVOKER without SET clauses because PostgreSQL allows
-- COMMIT only there; everything it runs is schema-qualified and the
-- privileged steps are SECURITY DEFINER functions with a pinned search_path.
CREATE OR REPLACE PROCEDURE tally.compact(
    p_max_deltas integer DEFAULT 1000000,
    p_max_attempts integer DEFAULT 5,
    p_slice integer DEFAULT 0,
    p_slices integer DEFAULT 1
)
LANGUAGE plpython3u
AS $python$
#include plpython/run_compactor.py
compactor["compact"](plpy, p_max_deltas, p_max_attempts, p_slice, p_slices)
$python$;

COMMENT ON PROCEDURE tally.compact (integer, integer, integer, integer) IS
'Fold every delta pending at the call into totals and rollups: committed steps of up to p_max_deltas, '
'transient failures retried.';
