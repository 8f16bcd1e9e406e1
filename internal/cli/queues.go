package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
)

const queuesUsage = `Usage:
  clearml-agent queues list [--json]
`

const workersUsage = `Usage:
  clearml-agent workers list [--json]
`

// listCommand checks "NOUN list [flags]" and returns list's arguments.
func listCommand(noun, usage string, argv []string, stdout, stderr io.Writer) ([]string, error) {
	if len(argv) == 0 {
		fmt.Fprint(stderr, usage)
		return nil, &UsageError{Msg: noun + ": missing sub-command (list)"}
	}
	switch argv[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil, errHelp
	case "list":
		return argv[1:], nil
	}
	return nil, &UsageError{Msg: fmt.Sprintf("%s: unknown sub-command %q (use list)", noun, argv[0])}
}

// runQueues is "clearml-agent queues list": every queue with the number of
// tasks waiting in it.
func runQueues(g args.Global, argv []string, stdout, stderr io.Writer) error {
	rest, err := listCommand("queues", queuesUsage, argv, stdout, stderr)
	if err != nil {
		return err
	}
	f := newFlags("queues list", "Usage: clearml-agent queues list [flags]\n\nLists the queues and how many tasks wait in each.\n")
	asJSON := f.fs.Bool("json", false, "print the queue documents as JSON")
	pos, err := f.parseArgs(rest, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("queues list: unexpected argument %q", pos[0])}
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	var resp struct {
		Queues []json.RawMessage `json:"queues"`
	}
	req := map[string]any{"order_by": []string{"name"}}
	if err := c.Call(ctx, "", "queues.get_all", req, &resp, apiclient.Default); err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(resp.Queues)
		return writeJSON(stdout, b, "[]")
	}
	// Only the fields shown are read: metadata is a list at old API versions.
	type queue struct {
		ID         string            `json:"id"`
		Name       string            `json:"name"`
		Tags       []string          `json:"tags"`
		SystemTags []string          `json:"system_tags"`
		Entries    []json.RawMessage `json:"entries"`
	}
	queues := make([]queue, 0, len(resp.Queues))
	for _, raw := range resp.Queues {
		var q queue
		if err := json.Unmarshal(raw, &q); err != nil {
			return fmt.Errorf("reading the server's queue list: %w", err)
		}
		queues = append(queues, q)
	}
	sort.SliceStable(queues, func(i, j int) bool { return queues[i].Name < queues[j].Name })
	t := &table{header: []string{"ID", "NAME", "ENTRIES", "TAGS", "SYSTEM_TAGS"}}
	for _, q := range queues {
		t.add(q.ID, q.Name, strconv.Itoa(len(q.Entries)), strings.Join(q.Tags, ","), strings.Join(q.SystemTags, ","))
	}
	return t.write(stdout)
}

// runWorkers is "clearml-agent workers list": the workers the server has
// heard from in the last hour.
func runWorkers(g args.Global, argv []string, stdout, stderr io.Writer) error {
	rest, err := listCommand("workers", workersUsage, argv, stdout, stderr)
	if err != nil {
		return err
	}
	f := newFlags("workers list", "Usage: clearml-agent workers list [flags]\n\nLists the workers active in the last hour.\n")
	asJSON := f.fs.Bool("json", false, "print the worker documents as JSON")
	pos, err := f.parseArgs(rest, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("workers list: unexpected argument %q", pos[0])}
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	var resp struct {
		Workers []json.RawMessage `json:"workers"`
	}
	if err := c.Call(ctx, "", "workers.get_all", map[string]any{}, &resp, apiclient.Default); err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(resp.Workers)
		return writeJSON(stdout, b, "[]")
	}
	type worker struct {
		ID           string    `json:"id"`
		Task         *nameRef  `json:"task"`
		Queues       []nameRef `json:"queues"`
		LastActivity *api.Time `json:"last_activity_time"`
	}
	workers := make([]worker, 0, len(resp.Workers))
	for _, raw := range resp.Workers {
		var w worker
		if err := json.Unmarshal(raw, &w); err != nil {
			return fmt.Errorf("reading the server's worker list: %w", err)
		}
		workers = append(workers, w)
	}
	sort.SliceStable(workers, func(i, j int) bool { return workers[i].ID < workers[j].ID })
	t := &table{header: []string{"ID", "TASK", "QUEUES", "LAST_ACTIVITY"}}
	for _, w := range workers {
		task := ""
		if w.Task != nil {
			task = w.Task.ID
		}
		names := make([]string, len(w.Queues))
		for i, q := range w.Queues {
			names[i] = q.label()
		}
		t.add(w.ID, task, strings.Join(names, ","), fmtTime(w.LastActivity))
	}
	return t.write(stdout)
}
