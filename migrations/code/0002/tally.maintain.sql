-- tally.maintain: run tally's periodic maintenance (tally._maintain):
-- premake rollup partitions, drop those past retention, prune old fold
-- runs. Scheduled hourly by tally.schedule_compactor(). SECURITY INVOKER so
-- it can put the caller's search_path back: pg_partman sets it for the
-- whole session while it works.
CREATE OR REPLACE FUNCTION tally.maintain()
RETURNS TABLE (step text, detail text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_search_path text := pg_catalog.current_setting('search_path');
BEGIN
    RETURN QUERY SELECT m.step, m.detail FROM tally._maintain() AS m;
    PERFORM pg_catalog.set_config('search_path', v_search_path, false);
END;
$$;

COMMENT ON FUNCTION tally.maintain() IS
'Premake rollup partitions, drop partitions past retention, prune old fold runs; safe to run any time.';
