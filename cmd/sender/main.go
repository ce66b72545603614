// Command sender is chatwire's sender process; see docs/architecture.md.
package main

import "github.com/chatwire/chatwire/pkg/app"

func main() { app.Main("sender", run) }
