-- Per-subaccount, per-direction-group health in one-minute event-time windows.
-- One row per window: the full state of the window, upserted as the processors refine it.
CREATE TABLE health_minute (
    account_sid VARCHAR NOT NULL,
    direction_group VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    attempts BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- Files by time, never by subaccount (DESIGN.md, "Warehouse").
ALTER TABLE health_minute SET PARTITIONED BY (year(window_start), month(window_start));
