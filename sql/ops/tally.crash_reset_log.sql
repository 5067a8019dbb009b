-- tally.crash_reset_log: every crash reset the compactor recorded (a crash,
-- or the promotion of a standby, emptied the UNLOGGED shards of fast
-- counters), newest first: when it was detected, its cause, when the server
-- started, and the window whose fast increments were lost: acknowledged from
-- lost_since (NULL: since install) up to lost_until (the crash restart, or
-- the promotion) and not folded into what this server holds; who
-- acknowledged it when (tally.acknowledge_crash), and on which node (a Citus
-- worker's crash empties its own fast shards; NULL: this server).
-- tally.crash_resets as a tally_reader login may read it.
CREATE OR REPLACE VIEW tally.crash_reset_log AS
SELECT
    r.id,
    r.detected_at,
    r.server_started_at,
    r.lost_since,
    r.lost_until - r.lost_since AS lost_window,
    r.acknowledged_at,
    r.acknowledged_by,
    r.node,
    r.cause,
    r.lost_until
FROM tally.crash_resets AS r
ORDER BY r.id DESC;

COMMENT ON VIEW tally.crash_reset_log IS
'Crash resets recorded (fast deltas lost by a crash or a promotion), newest first: detected at, server start, '
'lost since, lost window, acknowledged at and by, the node (a Citus worker; NULL: this server), cause, lost until.';
