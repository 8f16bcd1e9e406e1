// Command agentbench runs the end-to-end benchmarks of clearml-agent
// against real processes on loopback and prints their figures (see
// internal/bench and docs/benchmarks.md):
//
//	go run ./cmd/agentbench [--quick] [--only a,b] [--json] [--binary PATH]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/goclearml/agent/internal/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", "comma-separated scenarios to run (default: all; see --list)")
	quick := fs.Bool("quick", false, "fewer iterations and shorter windows (about a minute)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	binary := fs.String("binary", "", "clearml-agent binary to measure (default: build this checkout with CGO_ENABLED=0)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	verbose := fs.Bool("v", false, "log scenario progress details to stderr")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agentbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *list {
		for _, s := range bench.Scenarios() {
			fmt.Fprintf(stdout, "%-12s %s\n", s.Name, s.What)
		}
		return 0
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	o := bench.Options{Binary: *binary, Quick: *quick, Progress: stderr,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if s = strings.TrimSpace(s); s != "" {
				o.Only = append(o.Only, s)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "agentbench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentbench: %v\n", err)
		return 1
	}
	return 0
}
