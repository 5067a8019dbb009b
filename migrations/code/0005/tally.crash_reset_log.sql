-- tally.crash_reset_log: every crash reset the compactor recorded (a crash
-- emptied the UNLOGGED shards of fast counters), newest first: when it was
-- detected, when the server restarted, and the window whose fast
-- increments were lost (written since lost_since and not folded before the
-- restart; lost_since NULL: since install), and who acknowledged it when
-- (tally.acknowledge_crash), and on which node (a Citus worker's crash
-- empties its own fast shards; NULL: this server). tally.crash_resets as a
-- tally_reader login may read it.
CREATE OR REPLACE VIEW tally.crash_reset_log AS
SELECT
    r.id,
    r.detected_at,
    r.server_started_at,
    r.lost_since,
    r.server_started_at - r.lost_since AS lost_window,
    r.acknowledged_at,
    r.acknowledged_by,
    r.node
FROM tally.crash_resets AS r
ORDER BY r.id DESC;

COMMENT ON VIEW tally.crash_reset_log IS
'Crash resets recorded (fast deltas lost), newest first: detected at, server start, lost since, lost window, '
'acknowledged at and by, and the node (a Citus worker; NULL: this server).';
