-- health_minute says whether each row is final: ``closed`` is true when the row is its window's
-- state at or after the window closed (only late events change it after that, each counted in
-- late_events), false for an open window's interim row. The ISV row is closed once every
-- subaccount row it merges is. The sink stores false for a row that does not say (a processor
-- from before this release).
--
-- Rows stored before this migration did not say. A subaccount's window closed when the stream
-- time of its processor shard passed window_end plus the grace; that stream time is at least the
-- time of every call-status or debugger event of the subaccount (they share the shard). A row
-- is marked closed when the subaccount has an event at least the grace plus the dedupe horizon
-- (120 s + 3600 s, the defaults) after the window's end: its processor closed the window an hour
-- of event time before, so the stored row is the one written at or after the close. Every other
-- row is marked open (not known to be final): a window the processor has not closed yet gets its
-- closed row when it does; a window it has closed keeps false until a late event rewrites it.
ALTER TABLE health_minute ADD COLUMN closed BOOLEAN;

UPDATE health_minute SET closed = coalesce(
    window_start + INTERVAL 3780 SECOND <= (
        SELECT max(e.event_time)
        FROM (
            SELECT account_sid, event_time FROM call_events
            UNION ALL
            SELECT account_sid, event_time FROM debugger_events
        ) AS e
        WHERE e.account_sid = health_minute.account_sid
    ),
    false
)
WHERE account_sid <> 'ISV';

UPDATE health_minute SET closed = coalesce(
    (
        SELECT bool_and(s.closed)
        FROM health_minute AS s
        WHERE s.account_sid <> 'ISV'
            AND s.direction_group = health_minute.direction_group
            AND s.window_start = health_minute.window_start
    ),
    false
)
WHERE account_sid = 'ISV';
