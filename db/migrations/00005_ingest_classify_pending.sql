-- The ingestor marks the message whose conversation must be classified (the first inbound message
-- of a new or reopened conversation) in the same transaction that stores it; the classify worker
-- clears the mark when it stores the result. The mark lets a redelivered batch — after a crash
-- between commit and publish — enqueue the classify job again, and lets an operator find
-- classifications that never finished. A nullable column without default only touches the catalog.

-- +goose Up
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS classify_pending boolean;

-- +goose Down
ALTER TABLE chat_messages DROP COLUMN IF EXISTS classify_pending;
