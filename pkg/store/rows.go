package store

import (
	"database/sql"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
)

// MessageColumns is the SELECT (or RETURNING) list that MessageRow scans: a chat_messages row as
// agents see it. Callers that need more columns embed MessageRow in their own struct and append
// theirs to this list.
const MessageColumns = `id, conversation_id, direction, message_type, content, media_url, channel,
	external_message_id, sender_type, sender_name, agent_id, status, status_at, error_code,
	error_text, summary, suggested_team, created_at`

// ConversationColumns is the SELECT (or RETURNING) list that ConversationRow scans.
const ConversationColumns = `id, phone_number, customer_name, status, assigned_team, assigned_agent, channel,
	last_message_at, unread_count, created_at, updated_at`

// MessageColumnsOf is MessageColumns with every column qualified by a table alias, for statements
// that join chat_messages with a table sharing column names (conversations has id, status, channel).
func MessageColumnsOf(alias string) string { return qualify(MessageColumns, alias) }

// ConversationColumnsOf is ConversationColumns qualified by a table alias.
func ConversationColumnsOf(alias string) string { return qualify(ConversationColumns, alias) }

func qualify(cols, alias string) string {
	names := strings.Split(cols, ",")
	for i, n := range names {
		names[i] = alias + "." + strings.TrimSpace(n)
	}
	return strings.Join(names, ", ")
}

// MessageRow scans MessageColumns. Nullable columns are sql.Null*; Data turns NULL into the
// omitted (empty) field of the event.
type MessageRow struct {
	ID                string         `db:"id"`
	ConversationID    string         `db:"conversation_id"`
	Direction         string         `db:"direction"`
	MessageType       string         `db:"message_type"`
	Content           sql.NullString `db:"content"`
	MediaURL          sql.NullString `db:"media_url"`
	Channel           sql.NullString `db:"channel"`
	ExternalMessageID sql.NullString `db:"external_message_id"`
	SenderType        string         `db:"sender_type"`
	SenderName        sql.NullString `db:"sender_name"`
	AgentID           sql.NullString `db:"agent_id"`
	Status            sql.NullString `db:"status"`
	StatusAt          sql.NullTime   `db:"status_at"`
	ErrorCode         sql.NullString `db:"error_code"`
	ErrorText         sql.NullString `db:"error_text"`
	Summary           sql.NullString `db:"summary"`
	SuggestedTeam     sql.NullString `db:"suggested_team"`
	CreatedAt         time.Time      `db:"created_at"`
}

// Data is the row as the new_message / message_status events and the agent API carry it. Times
// are in UTC, so every process writes the same JSON for the same row whatever its session's time
// zone.
func (r MessageRow) Data() event.MessageData {
	return event.MessageData{
		ID:                r.ID,
		ConversationID:    r.ConversationID,
		Direction:         r.Direction,
		MessageType:       r.MessageType,
		Content:           r.Content.String,
		MediaURL:          r.MediaURL.String,
		Channel:           r.Channel.String,
		ExternalMessageID: r.ExternalMessageID.String,
		SenderType:        r.SenderType,
		SenderName:        r.SenderName.String,
		AgentID:           r.AgentID.String,
		Status:            r.Status.String,
		StatusAt:          utcPtr(r.StatusAt),
		ErrorCode:         r.ErrorCode.String,
		ErrorText:         r.ErrorText.String,
		Summary:           r.Summary.String,
		SuggestedTeam:     r.SuggestedTeam.String,
		CreatedAt:         r.CreatedAt.UTC(),
	}
}

// ConversationRow scans ConversationColumns.
type ConversationRow struct {
	ID            string         `db:"id"`
	PhoneNumber   string         `db:"phone_number"`
	CustomerName  sql.NullString `db:"customer_name"`
	Status        string         `db:"status"`
	AssignedTeam  sql.NullString `db:"assigned_team"`
	AssignedAgent sql.NullString `db:"assigned_agent"`
	Channel       string         `db:"channel"`
	LastMessageAt sql.NullTime   `db:"last_message_at"`
	UnreadCount   int            `db:"unread_count"`
	CreatedAt     time.Time      `db:"created_at"`
	UpdatedAt     time.Time      `db:"updated_at"`
}

// Data is the row as conversation_updated events and the agent API carry it, times in UTC.
func (c ConversationRow) Data() event.ConversationData {
	return event.ConversationData{
		ID:            c.ID,
		PhoneNumber:   c.PhoneNumber,
		CustomerName:  c.CustomerName.String,
		Status:        c.Status,
		AssignedTeam:  c.AssignedTeam.String,
		AssignedAgent: c.AssignedAgent.String,
		Channel:       c.Channel,
		LastMessageAt: utcPtr(c.LastMessageAt),
		UnreadCount:   c.UnreadCount,
		CreatedAt:     c.CreatedAt.UTC(),
		UpdatedAt:     c.UpdatedAt.UTC(),
	}
}

// utcPtr is nil for NULL, so the field is omitted from the JSON.
func utcPtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
