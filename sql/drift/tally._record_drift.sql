-- tally._record_drift: store the findings of one tally.check_drift run (it
-- runs as its caller, who cannot write tally's tables).
CREATE OR REPLACE FUNCTION tally._record_drift(
    p_counter_id integer, p_keys_checked integer, p_findings jsonb, p_source_checked boolean
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO tally.drift_checks (counter_id, key, kind, detail, expected, actual)
    SELECT p_counter_id, f.key, f.kind, f.detail, f.expected, f.actual
    FROM jsonb_to_recordset(coalesce(p_findings, '[]')) AS f (key text, kind text, detail text, expected bigint, actual bigint);
    INSERT INTO tally.drift_runs (counter_id, keys_checked, inconsistent_keys, drifting_keys, max_abs_drift)
    SELECT p_counter_id, p_keys_checked,
           count(DISTINCT f.key) FILTER (WHERE f.kind = 'internal'),
           CASE WHEN p_source_checked THEN count(DISTINCT f.key) FILTER (WHERE f.kind = 'source') END,
           max(abs(coalesce(f.expected, 0) - coalesce(f.actual, 0))) FILTER (WHERE f.kind = 'source')
    FROM jsonb_to_recordset(coalesce(p_findings, '[]')) AS f (key text, kind text, detail text, expected bigint, actual bigint);
    DELETE FROM tally.drift_checks AS d WHERE d.checked_at < now() - interval '30 days';
    DELETE FROM tally.drift_runs AS d WHERE d.checked_at < now() - interval '30 days';
END;
$$;

COMMENT ON FUNCTION tally._record_drift(integer, integer, jsonb, boolean) IS
'Internal: record the findings of a drift check (kept 30 days).';
