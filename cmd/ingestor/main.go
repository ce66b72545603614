// Command ingestor is chatwire's ingestor process; see docs/architecture.md.
package main

import "github.com/chatwire/chatwire/pkg/app"

func main() { app.Main("ingestor", run) }
