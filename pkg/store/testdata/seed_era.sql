-- A database as the original NestJS system left it: its own constraint and index names, timestamps
-- without time zone, and rows from before chatwire.
CREATE TABLE conversations (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    phone_number text NOT NULL,
    customer_name text,
    status text NOT NULL DEFAULT 'open',
    assigned_team text,
    assigned_agent text,
    last_message_at timestamp,
    unread_count integer DEFAULT 0,
    created_at timestamp NOT NULL DEFAULT now(),
    updated_at timestamp NOT NULL DEFAULT now(),
    CONSTRAINT "PK_conversations" PRIMARY KEY (id),
    CONSTRAINT "UQ_conversations_phone" UNIQUE (phone_number),
    CONSTRAINT "CHK_conversations_status" CHECK (status IN ('open', 'resolved', 'archived'))
);
CREATE TABLE chat_messages (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    interakt_message_id text,
    direction text NOT NULL,
    message_type text NOT NULL DEFAULT 'text',
    content text,
    media_url text,
    sender_type text NOT NULL,
    sender_name text,
    agent_id text,
    summary text,
    suggested_team text,
    is_read boolean DEFAULT false,
    created_at timestamp NOT NULL DEFAULT now(),
    CONSTRAINT "PK_chat_messages" PRIMARY KEY (id),
    CONSTRAINT "UQ_chat_messages_interakt" UNIQUE (interakt_message_id),
    CONSTRAINT "FK_chat_messages_conversation" FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT "CHK_direction" CHECK (direction IN ('inbound', 'outbound')),
    CONSTRAINT "CHK_sender_type" CHECK (sender_type IN ('customer', 'agent')),
    CONSTRAINT "CHK_message_type" CHECK (message_type IN ('text', 'image', 'document', 'audio', 'video'))
);
CREATE INDEX "IDX_conv_status" ON conversations (status);
CREATE INDEX "IDX_msg_conv" ON chat_messages (conversation_id);

INSERT INTO conversations (id, phone_number, customer_name, status, unread_count, last_message_at) VALUES
  ('11111111-1111-1111-1111-111111111111', '919876543210', 'Asha', 'open', 2, '2026-01-02 10:00:00'),
  ('22222222-2222-2222-2222-222222222222', '919201053157', 'Ravi', 'resolved', 0, '2026-01-03 09:00:00');
INSERT INTO chat_messages (id, conversation_id, interakt_message_id, direction, message_type, content, sender_type, sender_name, created_at) VALUES
  ('a0000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'ik-msg-1', 'inbound', 'text', 'Where is my order?', 'customer', 'Asha', '2026-01-02 09:59:00'),
  ('a0000000-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', 'ik-msg-2', 'inbound', 'image', 'photo', 'customer', 'Asha', '2026-01-02 10:00:00'),
  ('a0000000-0000-0000-0000-000000000003', '11111111-1111-1111-1111-111111111111', NULL, 'outbound', 'text', 'Ships today', 'agent', 'Agent Smith', '2026-01-02 10:05:00'),
  ('a0000000-0000-0000-0000-000000000004', '22222222-2222-2222-2222-222222222222', 'ik-msg-3', 'inbound', 'text', 'Refund please', 'customer', 'Ravi', '2026-01-03 09:00:00');
