-- tally._invisible_to_all: true when transaction p_xid committed and no
-- snapshot anywhere in the cluster (backends, prepared transactions,
-- replication slots, standbys reporting through hot_standby_feedback) can
-- still see the rows it deleted: every xmin is newer. Conservative: an old
-- running transaction holds it back exactly as it holds back VACUUM.
CREATE OR REPLACE FUNCTION tally._invisible_to_all(p_xid xid8)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT
        p_xid IS NOT NULL
        AND pg_xact_status(p_xid) = 'committed'
        AND NOT EXISTS (
            SELECT FROM pg_stat_activity AS a
            WHERE a.backend_xmin IS NOT NULL AND age(a.backend_xmin) >= age(xid(_invisible_to_all.p_xid))  -- noqa: RF01
        )
        AND NOT EXISTS (
            SELECT FROM pg_replication_slots AS s
            WHERE s.xmin IS NOT NULL AND age(s.xmin) >= age(xid(_invisible_to_all.p_xid))  -- noqa: RF01
        )
        AND NOT EXISTS (
            SELECT FROM pg_prepared_xacts AS p
            WHERE age(p.transaction) >= age(xid(_invisible_to_all.p_xid))  -- noqa: RF01
        );
END;

COMMENT ON FUNCTION tally._invisible_to_all(xid8) IS
'Internal: p_xid committed and every snapshot in the cluster is newer (its deleted rows are dead to all).';
