-- tally._sample_backlog: record how many deltas are pending now in
-- tally.backlog_samples, at most once every 10 s (whichever compactor comes
-- first), and forget samples older than an hour. The count is the
-- statistics' live-tuple estimate of the delta shards (no scan of a
-- backlog of millions); on Citus, where the shards' statistics are on the
-- workers, a count of tally.delta. tally.compact_step calls it.
CREATE OR REPLACE FUNCTION tally._sample_backlog()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pending bigint;
BEGIN
    IF EXISTS (SELECT FROM tally.backlog_samples AS s WHERE s.sampled_at > now() - interval '10 seconds') THEN
        RETURN;
    END IF;
    IF tally._distributed() THEN
        v_pending := tally._pending();
    ELSE
        SELECT coalesce(sum(greatest(pg_stat_get_live_tuples(s.shard_table::oid), 0)), 0)::bigint
        INTO v_pending
        FROM tally.shards AS s;
    END IF;
    INSERT INTO tally.backlog_samples (sampled_at, pending) VALUES (now(), v_pending)
    ON CONFLICT (sampled_at) DO NOTHING;
    DELETE FROM tally.backlog_samples AS s WHERE s.sampled_at < now() - interval '1 hour';
END;
$$;

COMMENT ON FUNCTION tally._sample_backlog() IS
'Internal: sample the pending deltas into tally.backlog_samples (at most every 10 s; the last hour kept).';
