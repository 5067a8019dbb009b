-- tally.compact_loop: the compactor as a long-running job. Folds everything
-- pending (as tally.compact does) about every p_interval seconds for
-- p_seconds, then returns. pg_cron starts it every minute with p_seconds
-- just under 60 (tally.schedule_compactor), so the lag stays near
-- p_interval; pg_cron never runs a job twice at once. Parallel folds: run
-- p_slices loops at once, each with its own p_slice (0 .. p_slices - 1),
-- e.g. tally.schedule_compactor(p_workers => 2).
CREATE OR REPLACE PROCEDURE tally.compact_loop(
    p_seconds double precision DEFAULT 55,
    p_interval double precision DEFAULT 1,
    p_max_deltas integer DEFAULT 1000000,
    p_max_attempts integer DEFAULT 5,
    p_slice integer DEFAULT 0,
    p_slices integer DEFAULT 1
)
LANGUAGE plpython3u
AS $python$
#include plpython/run_compactor.py
compactor["compact_loop"](plpy, p_seconds, p_interval, p_max_deltas, p_max_attempts, p_slice, p_slices)
$python$;

COMMENT ON PROCEDURE tally.compact_loop (double precision, double precision, integer, integer, integer, integer) IS
'Run the compactor for p_seconds, folding everything pending every p_interval seconds.';
