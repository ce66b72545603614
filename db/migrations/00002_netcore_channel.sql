-- The Netcore migration. Deployed databases ran it already, so it must be a no-op there.
-- external_message_id is the provider's message id on any channel; Interakt rows get it from the
-- legacy interakt_message_id column.

-- +goose Up
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT 'interakt';
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS external_message_id text;
UPDATE chat_messages
   SET external_message_id = interakt_message_id
 WHERE external_message_id IS NULL AND interakt_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_chat_messages_external_message_id ON chat_messages (external_message_id);

-- +goose Down
DROP INDEX IF EXISTS idx_chat_messages_external_message_id;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS external_message_id;
ALTER TABLE conversations DROP COLUMN IF EXISTS channel;
