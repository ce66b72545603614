-- +goose NO TRANSACTION
-- Large-table steps, outside a transaction so production keeps writing while they run:
-- 1. chat_messages.channel is backfilled in batches of 5,000 rows, each committed on its own
--    (legacy rows with interakt_message_id are Interakt; others take their conversation's channel).
-- 2. Rows that share (channel, external_message_id) — the original check-then-insert dedup let
--    such duplicates in — keep their data; every copy but the oldest gets its id suffixed with
--    '#dup-<row id>' so the unique index can be built. Nothing is deleted.
-- 3. The unique index on (channel, external_message_id) and the one on command_id are built
--    CONCURRENTLY; an invalid index left by an interrupted build is dropped first.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE n integer;
BEGIN
    LOOP
        UPDATE chat_messages m
           SET channel = CASE WHEN m.interakt_message_id IS NOT NULL THEN 'interakt'
                              ELSE coalesce(c.channel, 'interakt') END
          FROM conversations c
         WHERE m.id IN (SELECT id FROM chat_messages WHERE channel IS NULL LIMIT 5000)
           AND c.id = m.conversation_id;
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        EXIT WHEN n = 0;
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    UPDATE chat_messages m
       SET external_message_id = m.external_message_id || '#dup-' || m.id
      FROM (SELECT id, row_number() OVER (PARTITION BY channel, external_message_id
                                          ORDER BY created_at, id) AS rn
              FROM chat_messages
             WHERE external_message_id IS NOT NULL) d
     WHERE d.id = m.id AND d.rn > 1;
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = 'chat_messages_channel_external_id_key' AND NOT i.indisvalid) THEN
        DROP INDEX chat_messages_channel_external_id_key;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = 'chat_messages_command_id_key' AND NOT i.indisvalid) THEN
        DROP INDEX chat_messages_command_id_key;
    END IF;
END $$;
-- +goose StatementEnd

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS chat_messages_channel_external_id_key
    ON chat_messages (channel, external_message_id);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS chat_messages_command_id_key
    ON chat_messages (command_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chat_messages_conversation_created
    ON chat_messages (conversation_id, created_at DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS idx_chat_messages_conversation_created;
DROP INDEX CONCURRENTLY IF EXISTS chat_messages_command_id_key;
DROP INDEX CONCURRENTLY IF EXISTS chat_messages_channel_external_id_key;
