-- The original chat schema. Deployed databases already have it, so every statement adopts what
-- exists (IF NOT EXISTS) and changes nothing there; on an empty database it creates the schema as
-- the original system had it, CHECK constraints included.

-- +goose Up
CREATE TABLE IF NOT EXISTS conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number    text NOT NULL UNIQUE,
    customer_name   text,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'archived')),
    assigned_team   text,
    assigned_agent  text,
    last_message_at timestamptz,
    unread_count    integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS chat_messages (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id     uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    interakt_message_id text UNIQUE,
    direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    message_type        text NOT NULL DEFAULT 'text' CHECK (message_type IN ('text', 'image', 'document', 'audio', 'video')),
    content             text,
    media_url           text,
    sender_type         text NOT NULL CHECK (sender_type IN ('customer', 'agent')),
    sender_name         text,
    agent_id            text,
    summary             text,
    suggested_team      text,
    is_read             boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_conversations_status ON conversations (status);
CREATE INDEX IF NOT EXISTS idx_conversations_assigned_team ON conversations (assigned_team) WHERE assigned_team IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_conversations_last_message_at ON conversations (last_message_at DESC);
CREATE INDEX IF NOT EXISTS idx_chat_messages_conversation_id ON chat_messages (conversation_id);
CREATE INDEX IF NOT EXISTS idx_chat_messages_interakt_message_id ON chat_messages (interakt_message_id) WHERE interakt_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_chat_messages_created_at ON chat_messages (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_chat_messages_direction ON chat_messages (direction);

-- +goose Down
DROP TABLE IF EXISTS chat_messages;
DROP TABLE IF EXISTS conversations;
