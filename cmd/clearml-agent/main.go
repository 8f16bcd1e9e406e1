// Command clearml-agent runs ClearML tasks from queues, and the embedded
// ClearML-compatible server they can come from.
package main

import (
	"os"

	"github.com/goclearml/agent/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
