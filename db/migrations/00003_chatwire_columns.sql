-- chatwire's columns. Adding nullable columns without defaults only touches the catalog, so this
-- runs in a transaction on any table size. The message_type CHECK of the original schema allowed
-- five types; chatwire stores every WhatsApp type (location, sticker, interactive, unknown…), so the
-- old check is replaced by a wider one, added NOT VALID so existing rows are not rescanned.

-- +goose Up
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS channel text;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS status text;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS status_at timestamptz;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS error_code text;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS error_text text;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS command_id text;
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS provider_payload jsonb;

-- +goose StatementBegin
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
         WHERE conrelid = 'chat_messages'::regclass AND contype = 'c'
           AND pg_get_constraintdef(oid) LIKE '%message_type%'
           AND conname <> 'chat_messages_message_type_v2_check'
    LOOP
        EXECUTE format('ALTER TABLE chat_messages DROP CONSTRAINT %I', c.conname);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'chat_messages'::regclass
                      AND conname = 'chat_messages_message_type_v2_check') THEN
        ALTER TABLE chat_messages ADD CONSTRAINT chat_messages_message_type_v2_check CHECK (message_type IN (
            'text', 'image', 'document', 'audio', 'video', 'location', 'sticker', 'interactive',
            'reaction', 'template', 'contacts', 'unknown')) NOT VALID;
    END IF;
END $$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE chat_messages DROP CONSTRAINT IF EXISTS chat_messages_message_type_v2_check;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS provider_payload;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS command_id;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS error_text;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS error_code;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS status_at;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS status;
ALTER TABLE chat_messages DROP COLUMN IF EXISTS channel;
