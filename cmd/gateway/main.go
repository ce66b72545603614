// Command gateway is chatwire's gateway process; see docs/architecture.md.
package main

import "github.com/chatwire/chatwire/pkg/app"

func main() { app.Main("gateway", run) }
