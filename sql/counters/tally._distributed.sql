-- tally._distributed: whether this install is distributed on Citus
-- (revision 0004 decides, migrations/tally_citus.py). The code takes the
-- distributed paths where a single node's would not work across nodes: the
-- fold (tally._fold_distributed) and event-id claims (tally._claim_event).
-- A quoted body, not BEGIN ATOMIC: a function that tally._claim_days()
-- (BEGIN ATOMIC) depends on must not depend on tally.settings in turn, or
-- Citus sees a circular dependency when settings becomes a reference table.
CREATE OR REPLACE FUNCTION tally._distributed()
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.distributed FROM tally.settings AS s;
$$;

COMMENT ON FUNCTION tally._distributed() IS
'Internal: whether this install is distributed on Citus (tally.settings.distributed).';
