-- health_minute says where each row comes from: 'stream' (the processors, through the sink) or
-- 'batch' (voicepulse backfill-health, computed from the calls and debugger_events tables for
-- windows the stream did not see whole; warehouse/backfill.py). A window has one row either
-- way: a batch row is written only in place of the stored row of its window, so every sum
-- over health_minute (health_hourly, health_daily) counts each window once. Rows stored before
-- this migration came from the stream.
ALTER TABLE health_minute ADD COLUMN source VARCHAR;

UPDATE health_minute SET source = 'stream';
