-- tally._compactor: the compactor's code, held once (plpython/compact.py):
-- the PL/Python module that tally.compact and tally.compact_loop run. They
-- are thin: each reads this function's body from the catalog (pg_proc is
-- readable by every role; EXECUTE on this function is granted to none) and
-- runs it (plpython/run_compactor.py), so a revision that changes the
-- compactor changes this one object. Called itself, it only defines the
-- module's functions and returns.
CREATE OR REPLACE FUNCTION tally._compactor()
RETURNS void
LANGUAGE plpython3u
AS $python$
#include plpython/compact.py
$python$;

COMMENT ON FUNCTION tally._compactor() IS
'Internal: the compactor''s PL/Python module (plpython/compact.py), run by tally.compact and tally.compact_loop.';
