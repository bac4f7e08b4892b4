-- The processor states of the calls heard of across more than one state (a call forgotten past
-- the dedupe horizon and heard of again opens a later state; see warehouse/merge.py): the
-- highest fact version of each (call_sid, opened_at). A merged calls row is the fold of its
-- call's states in opened_at order, so it does not depend on the order the facts arrived in.
-- A column added to calls is added here too.
CREATE TABLE call_states AS SELECT * FROM calls WHERE merged;
ALTER TABLE call_states SET PARTITIONED BY (year(call_time), month(call_time));
ALTER TABLE call_states SET SORTED BY (call_sid, opened_at);
