// Command notifier is chatwire's notifier process; see docs/architecture.md.
package main

import "github.com/chatwire/chatwire/pkg/app"

func main() { app.Main("notifier", run) }
