-- The sink now finds the stored version of a call by last_event_at (the end of the call, which
-- every version names alike) instead of call_time (its creation time, which moves by the CPS
-- queue time once the Call resource arrives). A fact without any timed event is looked up by
-- its call time: give the rows stored before this release the same value.
UPDATE calls SET last_event_at = call_time WHERE last_event_at IS NULL;
