-- The same database after the original system's Netcore migration ran: a Netcore conversation,
-- and two rows with the same Netcore message id that the old check-then-insert dedup let in.
ALTER TABLE conversations ADD COLUMN channel text NOT NULL DEFAULT 'interakt';
ALTER TABLE chat_messages ADD COLUMN external_message_id text;
UPDATE chat_messages SET external_message_id = interakt_message_id WHERE interakt_message_id IS NOT NULL;
CREATE INDEX "IDX_msg_external" ON chat_messages (external_message_id);
UPDATE conversations SET channel = 'netcore' WHERE id = '22222222-2222-2222-2222-222222222222';
INSERT INTO chat_messages (id, conversation_id, external_message_id, direction, message_type, content, sender_type, created_at) VALUES
  ('b0000000-0000-0000-0000-000000000001', '22222222-2222-2222-2222-222222222222', 'wamid.NC1', 'inbound', 'text', 'hello', 'customer', '2026-01-03 09:01:00'),
  ('b0000000-0000-0000-0000-000000000002', '22222222-2222-2222-2222-222222222222', 'wamid.NC1', 'inbound', 'text', 'hello', 'customer', '2026-01-03 09:01:01');
