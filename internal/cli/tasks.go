package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/vcs"
)

const tasksUsage = `Usage:
  clearml-agent tasks list [--status S1,S2] [--project NAME] [--limit N] [--json]
  clearml-agent tasks show TASK_ID [--json]
  clearml-agent tasks logs TASK_ID [--follow]
  clearml-agent tasks abort TASK_ID [--force] [--json]
  clearml-agent tasks enqueue TASK_ID [--queue NAME] [--json]
  clearml-agent tasks reset TASK_ID [--json]

"tasks logs --follow" polls every 500 ms until the task has ended and no new
lines arrive; it then exits 0 when the task completed (or was published or
closed), 1 when it failed and 2 when it was stopped.
`

// runTasks dispatches "clearml-agent tasks SUB ...".
func runTasks(g args.Global, argv []string, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		fmt.Fprint(stderr, tasksUsage)
		return &UsageError{Msg: "tasks: missing sub-command (list, show, logs, abort, enqueue or reset)"}
	}
	sub, rest := argv[0], argv[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, tasksUsage)
		return errHelp
	case "list":
		return tasksList(g, rest, stdout, stderr)
	case "show":
		return tasksShow(g, rest, stdout, stderr)
	case "logs":
		return tasksLogs(g, rest, stdout, stderr)
	case "abort", "enqueue", "reset":
		return tasksAction(g, sub, rest, stdout, stderr)
	default:
		return &UsageError{Msg: fmt.Sprintf("tasks: unknown sub-command %q (use list, show, logs, abort, enqueue or reset)", sub)}
	}
}

// oneTaskID checks that exactly one positional argument, a task id, was given.
func oneTaskID(cmd string, pos []string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", &UsageError{Msg: cmd + ": missing TASK_ID"}
	case len(pos) > 1:
		return "", &UsageError{Msg: fmt.Sprintf("%s: unexpected argument %q", cmd, pos[1])}
	case strings.TrimSpace(pos[0]) == "":
		return "", &UsageError{Msg: cmd + ": empty TASK_ID"}
	}
	return pos[0], nil
}

var knownStatuses = []string{api.StatusCreated, api.StatusQueued, api.StatusInProgress, api.StatusStopped, api.StatusPublished,
	api.StatusPublishing, api.StatusClosed, api.StatusFailed, api.StatusCompleted, api.StatusUnknown}

// pageMax is the most a get_all page holds on the reference server.
const pageMax = 500

func tasksList(g args.Global, argv []string, stdout, stderr io.Writer) error {
	f := newFlags("tasks list", "Usage: clearml-agent tasks list [flags]\n\nLists tasks, newest first.\n")
	status := f.fs.String("status", "", "only tasks in these `STATUSES` (comma-separated: "+strings.Join(knownStatuses, ", ")+")")
	project := f.fs.String("project", "", "only tasks of the project with this full `NAME`")
	limit := f.fs.Int("limit", 50, "show at most `N` tasks")
	asJSON := f.fs.Bool("json", false, "print the task documents as JSON")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("tasks list: unexpected argument %q", pos[0])}
	}
	if *limit < 1 {
		return &UsageError{Msg: "tasks list: --limit must be at least 1"}
	}
	var statuses []string
	for _, s := range strings.Split(*status, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(knownStatuses, s) {
			return &UsageError{Msg: fmt.Sprintf("tasks list: unknown status %q (use %s)", s, strings.Join(knownStatuses, ", "))}
		}
		statuses = append(statuses, s)
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	req := map[string]any{"order_by": []string{"-created"}}
	if len(statuses) > 0 {
		req["status"] = statuses
	}
	if *project != "" {
		id, err := findProject(ctx, c, *project)
		if err != nil {
			return err
		}
		if id == "" {
			return fmt.Errorf("project %q not found", *project)
		}
		req["project"] = []string{id}
	}
	if !*asJSON {
		req["only_fields"] = []string{"id", "name", "type", "status", "status_reason", "created"}
	}
	var docs []json.RawMessage
	size := min(*limit, pageMax)
	for page := 0; len(docs) < *limit; page++ {
		req["page"], req["page_size"] = page, size
		var resp struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if err := c.Call(ctx, "", "tasks.get_all", req, &resp, apiclient.Default); err != nil {
			return err
		}
		docs = append(docs, resp.Tasks...)
		if len(resp.Tasks) < size {
			break
		}
	}
	docs = docs[:min(len(docs), *limit)]
	if *asJSON {
		b, _ := json.Marshal(docs)
		return writeJSON(stdout, b, "[]")
	}
	t := &table{header: []string{"ID", "NAME", "TYPE", "STATUS", "STATUS_REASON", "CREATED"}}
	for _, raw := range docs {
		var task api.Task
		if err := json.Unmarshal(raw, &task); err != nil {
			return fmt.Errorf("reading the server's task list: %w", err)
		}
		t.add(task.ID, task.Name, task.Type, task.Status, task.StatusReason, fmtTime(task.Created))
	}
	return t.write(stdout)
}

// findProject returns the id of the project with exactly this name, or ""
// when there is none.
func findProject(ctx context.Context, c *apiclient.Client, name string) (string, error) {
	req := map[string]any{"name": "^" + regexp.QuoteMeta(name) + "$", "only_fields": []string{"id", "name"}, "search_hidden": true}
	var resp struct {
		Projects []api.Project `json:"projects"`
	}
	if err := c.Call(ctx, "", "projects.get_all", req, &resp, apiclient.Default); err != nil {
		return "", err
	}
	for _, p := range resp.Projects {
		if p.Name == name {
			return p.ID, nil
		}
	}
	return "", nil
}

// getTask reads a task document: raw as the server sent it, and decoded.
func getTask(ctx context.Context, c *apiclient.Client, id string) (json.RawMessage, *api.Task, error) {
	var resp struct {
		Task json.RawMessage `json:"task"`
	}
	if err := c.Call(ctx, "", "tasks.get_by_id", api.TaskRequest{Task: id}, &resp, apiclient.Default); err != nil {
		return nil, nil, err
	}
	var t api.Task
	if err := json.Unmarshal(resp.Task, &t); err != nil || t.ID == "" {
		return nil, nil, fmt.Errorf("task %s: the server sent no task document", id)
	}
	return resp.Task, &t, nil
}

func tasksShow(g args.Global, argv []string, stdout, stderr io.Writer) error {
	f := newFlags("tasks show", "Usage: clearml-agent tasks show TASK_ID [flags]\n\nShows a task's key fields.\n")
	asJSON := f.fs.Bool("json", false, "print the whole task document as JSON")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	id, err := oneTaskID("tasks show", pos)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	raw, t, err := getTask(ctx, c, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, raw, "{}")
	}
	project := t.Project
	if t.Project != "" {
		var resp struct {
			Project api.Project `json:"project"`
		}
		if err := c.Call(ctx, "", "projects.get_by_id", map[string]any{"project": t.Project}, &resp, apiclient.Default); err == nil && resp.Project.Name != "" {
			project = fmt.Sprintf("%s (%s)", resp.Project.Name, t.Project)
		}
	}
	queue, _ := t.Execution["queue"].(string)
	if queue != "" {
		if qs, err := c.QueuesByID(ctx, []string{queue}, []string{"id", "name"}); err == nil && len(qs) == 1 {
			queue = fmt.Sprintf("%s (%s)", qs[0].Name, queue)
		}
	}
	script := func(k string) string { s, _ := t.Script[k].(string); return s }
	kv := &table{full: true}
	kv.add("id:", t.ID)
	kv.add("name:", t.Name)
	kv.add("type:", t.Type)
	kv.add("status:", t.Status)
	kv.add("status_reason:", t.StatusReason)
	kv.add("status_message:", t.StatusMessage)
	kv.add("project:", project)
	kv.add("queue:", queue)
	kv.add("last_worker:", t.LastWorker)
	kv.add("created:", fmtTime(t.Created))
	kv.add("started:", fmtTime(t.Started))
	kv.add("completed:", fmtTime(t.Completed))
	kv.add("repository:", vcs.RedactURL(script("repository")))
	kv.add("branch:", script("branch"))
	kv.add("commit:", script("version_num"))
	kv.add("working_dir:", script("working_dir"))
	kv.add("entry_point:", script("entry_point"))
	kv.add("docker_image:", t.Container["image"])
	kv.add("tags:", strings.Join(t.Tags, ", "))
	return kv.write(stdout)
}

// defaultQueue names the queue tagged "default" on the server.
func defaultQueue(ctx context.Context, c *apiclient.Client) (id, name string, err error) {
	id, name, err = c.GetDefaultQueue(ctx)
	if err != nil {
		return "", "", fmt.Errorf("finding the default queue (name one with --queue): %w", err)
	}
	return id, name, nil
}

// resolveQueue returns the id and name of the named queue, creating it
// when it does not exist, or of the default queue when name is empty.
func resolveQueue(ctx context.Context, c *apiclient.Client, name string, create bool) (id, resolved string, err error) {
	if name == "" {
		return defaultQueue(ctx, c)
	}
	var all []api.Queue
	if err := c.Call(ctx, "", "queues.get_all", map[string]any{"only_fields": []string{"id", "name"}}, &struct {
		Queues *[]api.Queue `json:"queues"`
	}{&all}, apiclient.Default); err != nil {
		return "", "", fmt.Errorf("listing queues: %w", err)
	}
	// An id, the exact name, else the one name that differs only in case
	// (as the daemon matches names).
	var folded []api.Queue
	for _, q := range all {
		if q.ID == name || q.Name == name {
			return q.ID, q.Name, nil
		}
		if strings.EqualFold(q.Name, name) {
			folded = append(folded, q)
		}
	}
	if len(folded) == 1 {
		return folded[0].ID, folded[0].Name, nil
	}
	if !create {
		return "", "", &UsageError{Msg: unknownQueue(name, all)}
	}
	if id, err = c.CreateQueue(ctx, name); err != nil {
		return "", "", fmt.Errorf("creating queue %q: %w", name, err)
	}
	return id, name, nil
}

// unknownQueue says that a queue does not exist, suggests the closest
// name, and says how to create it.
func unknownQueue(name string, all []api.Queue) string {
	msg := fmt.Sprintf("no queue named %q", name)
	best, bestDist := "", len(name)/2+2
	names := make([]string, 0, len(all))
	for _, q := range all {
		names = append(names, strconv.Quote(q.Name))
		if d := editDistance(strings.ToLower(name), strings.ToLower(q.Name)); d < bestDist {
			best, bestDist = q.Name, d
		}
	}
	switch {
	case best != "":
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	case len(names) > 0 && len(names) <= 10:
		msg += " (queues: " + strings.Join(names, ", ") + ")"
	}
	return msg + "; pass --create-queue to create it"
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// enqueueTask puts a task in a queue (see resolveQueue) and returns the
// queue's name and the server's answer.
func enqueueTask(ctx context.Context, c *apiclient.Client, task, queue string, create bool) (string, json.RawMessage, error) {
	id, name, err := resolveQueue(ctx, c, queue, create)
	if err != nil {
		return "", nil, err
	}
	var resp json.RawMessage
	if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": task, "queue": id}, &resp, apiclient.Default); err != nil {
		return "", nil, enqueueHint(ctx, c, task, err)
	}
	return name, resp, nil
}

// enqueueHint adds what to do to a refused enqueue: a task that ran
// already is reset first.
func enqueueHint(ctx context.Context, c *apiclient.Client, task string, err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != 400 {
		return err
	}
	if status, _, serr := taskState(ctx, c, task); serr == nil && status != api.StatusCreated && status != api.StatusQueued {
		return fmt.Errorf("%w; the task is %s: run \"clearml-agent tasks reset %s\" first to run it again", err, status, task)
	}
	return err
}

// tasksAction runs abort (tasks.stop), enqueue and reset.
func tasksAction(g args.Global, sub string, argv []string, stdout, stderr io.Writer) error {
	heads := map[string]string{
		"abort":   "Usage: clearml-agent tasks abort TASK_ID [flags]\n\nStops a task (tasks.stop). A task that a live worker runs is marked for stopping; the worker aborts it.\n",
		"enqueue": "Usage: clearml-agent tasks enqueue TASK_ID [flags]\n\nPuts a task in a queue (tasks.enqueue).\n",
		"reset":   "Usage: clearml-agent tasks reset TASK_ID [flags]\n\nResets a task to created (tasks.reset with force), removing it from its queue and deleting its logs.\n",
	}
	f := newFlags("tasks "+sub, heads[sub])
	asJSON := f.fs.Bool("json", false, "print the server's answer as JSON")
	var queue *string
	var force, createQueue *bool
	switch sub {
	case "enqueue":
		queue = f.fs.String("queue", "", "the queue's `NAME` or id (default: the server's default queue)")
		createQueue = f.fs.Bool("create-queue", false, "create the queue when it does not exist")
	case "abort":
		force = f.fs.Bool("force", false, "stop the task whatever its status")
	}
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	id, err := oneTaskID("tasks "+sub, pos)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	var resp json.RawMessage
	var summary string
	switch sub {
	case "abort":
		if err := c.Call(ctx, "", "tasks.stop", map[string]any{"task": id, "force": *force}, &resp, apiclient.Default); err != nil {
			return err
		}
		var r struct {
			Fields struct {
				Status string `json:"status"`
			} `json:"fields"`
		}
		_ = json.Unmarshal(resp, &r)
		summary = fmt.Sprintf("Task %s stopped", id)
		if r.Fields.Status != "" && r.Fields.Status != api.StatusStopped {
			summary = fmt.Sprintf("Task %s: stop requested; its worker will abort it", id)
		}
	case "enqueue":
		name, r, err := enqueueTask(ctx, c, id, *queue, *createQueue)
		if err != nil {
			return err
		}
		resp, summary = r, fmt.Sprintf("Task %s queued in %s", id, strconv.Quote(name))
	case "reset":
		if err := c.Call(ctx, "", "tasks.reset", map[string]any{"task": id, "force": true}, &resp, apiclient.Default); err != nil {
			return err
		}
		summary = fmt.Sprintf("Task %s reset to %s", id, api.StatusCreated)
	}
	if *asJSON {
		return writeJSON(stdout, resp, "{}")
	}
	_, err = fmt.Fprintln(stdout, summary)
	return err
}
