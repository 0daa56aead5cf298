-- sealpost schema version 8: tracking shows each secure recipient's portal
-- replies (issue 15, item 9), looked up by the original they answer.
CREATE INDEX portal_sent_by_original ON portal_sent(original_id, original_idx);
