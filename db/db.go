// Package db embeds chatwire's goose migrations so every binary carries its own schema.
package db

import "embed"

// Migrations holds db/migrations/*.sql.
//
//go:embed migrations/*.sql
var Migrations embed.FS
