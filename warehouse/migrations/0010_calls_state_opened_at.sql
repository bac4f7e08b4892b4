-- A call forgotten by the processor past its dedupe horizon and heard of again (a late price, a
-- complete Insights summary) gets a new call state whose versions count from 1 again. Facts now
-- carry the stream time their state was opened at: the sink orders them by (opened_at, version)
-- and merges a later state's fact into the row of an earlier one field by field. ``merged`` says
-- that a row holds facts of more than one state. Rows stored before this release come from one
-- state each, opened before any other.
ALTER TABLE calls ADD COLUMN opened_at TIMESTAMP;
ALTER TABLE calls ADD COLUMN merged BOOLEAN;
UPDATE calls SET opened_at = TIMESTAMP '1970-01-01 00:00:00', merged = false
WHERE opened_at IS NULL;
