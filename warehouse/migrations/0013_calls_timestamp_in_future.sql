-- Call facts say whether one of the call's events was stamped more than the event-time tolerance
-- (VOICEPULSE_EVENT_TIME_TOLERANCE_S) after it was received; the processor counted such an event
-- at its receive time. Rows stored before this release come from processors that did not bound
-- event time and never said so: false, as the sink stores for a fact that does not say.
-- call_states (0015) copies the columns of calls: on a warehouse that has it already, the
-- column is added there too (NULL in the states it holds: read as false).
ALTER TABLE calls ADD COLUMN timestamp_in_future BOOLEAN;
UPDATE calls SET timestamp_in_future = false WHERE timestamp_in_future IS NULL;
ALTER TABLE IF EXISTS call_states ADD COLUMN IF NOT EXISTS timestamp_in_future BOOLEAN;
