package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// Task returns a task document (/v2.5/tasks.get_by_id). At 2.5 the server
// adds the legacy fields the agent falls back on (execution.docker_cmd).
func (c *Client) Task(ctx context.Context, id string) (*api.Task, error) {
	var resp struct {
		Task *api.Task `json:"task"`
	}
	if err := c.Call(ctx, "2.5", "tasks.get_by_id", api.TaskRequest{Task: id}, &resp, Default); err != nil {
		return nil, err
	}
	if resp.Task == nil {
		return nil, fmt.Errorf("calling tasks.get_by_id: task %s: %w", id, ErrNotFound)
	}
	return resp.Task, nil
}

// TaskStatus returns a task's status and status message, the agent's abort
// check (/v2.14/tasks.get_all, Poll budget). A task that does not exist
// gives an error matched by IsNotFound.
func (c *Client) TaskStatus(ctx context.Context, id string) (status, message string, err error) {
	req := map[string]any{"id": []string{id}, "only_fields": []string{"status", "status_message"}, "search_hidden": true}
	var resp struct {
		Tasks []struct {
			Status        string `json:"status"`
			StatusMessage string `json:"status_message"`
		} `json:"tasks"`
	}
	if err := c.Call(ctx, "2.14", "tasks.get_all", req, &resp, Poll); err != nil {
		return "", "", err
	}
	if len(resp.Tasks) == 0 {
		return "", "", fmt.Errorf("calling tasks.get_all: task %s: %w", id, ErrNotFound)
	}
	return resp.Tasks[0].Status, resp.Tasks[0].StatusMessage, nil
}

// WaitTaskStatus is TaskStatus held by the server (our extension
// tasks.wait_status, advertised as "task_wait") until the status or the
// status message differ from the given ones, or wait has passed: an abort
// is seen within milliseconds. Check HasExtension("task_wait") first.
func (c *Client) WaitTaskStatus(ctx context.Context, id, status, message string, wait time.Duration) (string, string, error) {
	req := map[string]any{"task": id, "status": status, "status_message": message, "wait_ms": wait.Milliseconds()}
	r, err := c.newRequest("", "tasks.wait_status", nil)
	if err != nil {
		return "", "", fmt.Errorf("calling tasks.wait_status: %w", err)
	}
	r.wait = wait
	if r.body, err = json.Marshal(req); err != nil {
		return "", "", fmt.Errorf("calling tasks.wait_status: encoding request: %w", err)
	}
	var resp struct {
		Status        string `json:"status"`
		StatusMessage string `json:"status_message"`
	}
	if err := c.do(ctx, r, &resp, Poll); err != nil {
		return "", "", err
	}
	return resp.Status, resp.StatusMessage, nil
}

// statusEndpoints are the status changes SetStatus sends.
var statusEndpoints = map[string]bool{"tasks.started": true, "tasks.stopped": true, "tasks.failed": true, "tasks.completed": true}

// SetStatus changes a task's status with tasks.started, tasks.stopped,
// tasks.failed or tasks.completed (/v2.5/). force skips the server's
// transition check; reason and message become status_reason and
// status_message.
func (c *Client) SetStatus(ctx context.Context, endpoint string, task string, force bool, reason, message string, p Policy) error {
	if !statusEndpoints[endpoint] {
		return fmt.Errorf("calling %s: not a status change (want tasks.started, stopped, failed or completed)", endpoint)
	}
	req := struct {
		Task          string `json:"task"`
		Force         bool   `json:"force,omitempty"`
		StatusReason  string `json:"status_reason,omitempty"`
		StatusMessage string `json:"status_message,omitempty"`
	}{task, force, reason, message}
	return c.Call(ctx, "2.5", endpoint, req, nil, p)
}

// Started marks a task in_progress (/v2.5/tasks.started, forced) with
// message as its status message. A non-empty lease (the hand-out id of the
// queues.get_next_task that gave the task, from a server with the "lease"
// extension) acknowledges that hand-out: if it expired and the task went
// back to its queue, the server refuses with api.ErrLeaseLost and the
// caller must not run the task.
func (c *Client) Started(ctx context.Context, task, message, lease string, p Policy) error {
	req := struct {
		Task          string `json:"task"`
		Force         bool   `json:"force"`
		StatusMessage string `json:"status_message,omitempty"`
		Lease         string `json:"lease,omitempty"`
	}{task, true, message, lease}
	return c.Call(ctx, "2.5", "tasks.started", req, nil, p)
}

// Dequeue is the execute step's safety net (unversioned tasks.dequeue with
// new_status "in_progress"): it takes the task out of its queue and returns
// how many tasks were updated; upstream calls tasks.started only when it
// is at least 1.
func (c *Client) Dequeue(ctx context.Context, task string) (updated int, err error) {
	req := map[string]any{"task": task, "new_status": api.StatusInProgress}
	var resp api.UpdateResponse
	if err := c.Call(ctx, "", "tasks.dequeue", req, &resp, Default); err != nil {
		return 0, err
	}
	return resp.Updated, nil
}

// EditRuntime merges set into a task's runtime properties: it reads them
// (/v2.15/tasks.get_all) and writes them back whole (unversioned tasks.edit
// with force). A nil value removes the key. The read-modify-write is not
// atomic: a concurrent edit of another key between the two calls is lost,
// as with upstream.
func (c *Client) EditRuntime(ctx context.Context, task string, set map[string]any) error {
	req := map[string]any{"id": []string{task}, "only_fields": []string{"runtime"}, "search_hidden": true}
	var resp struct {
		Tasks []struct {
			Runtime map[string]any `json:"runtime"`
		} `json:"tasks"`
	}
	if err := c.Call(ctx, "2.15", "tasks.get_all", req, &resp, Default); err != nil {
		return err
	}
	if len(resp.Tasks) == 0 {
		return fmt.Errorf("calling tasks.get_all: task %s: %w", task, ErrNotFound)
	}
	runtime := maps.Clone(resp.Tasks[0].Runtime)
	if runtime == nil {
		runtime = map[string]any{}
	}
	for k, v := range set {
		if v == nil {
			delete(runtime, k)
		} else {
			runtime[k] = v
		}
	}
	edit := map[string]any{"task": task, "force": true, "runtime": runtime}
	return c.Call(ctx, "", "tasks.edit", edit, nil, Default)
}

// Ping tells the server the task is alive (/v2.5/tasks.ping, Poll budget:
// the next ping follows soon).
func (c *Client) Ping(ctx context.Context, task string) error {
	return c.Call(ctx, "2.5", "tasks.ping", api.TaskRequest{Task: task}, nil, Poll)
}

// TaskContainer returns a task's container section (image, arguments,
// setup_shell_script) as upstream's docker mode reads it
// (/v2.14/tasks.get_all, only_fields container). Servers older than API
// 2.13 have no container section: the legacy execution.docker_cmd is
// returned in it as "docker_cmd".
func (c *Client) TaskContainer(ctx context.Context, task string) (map[string]string, error) {
	if !c.AtLeastVersion("2.13") {
		t, err := c.Task(ctx, task)
		if err != nil {
			return nil, err
		}
		cmd, _ := t.Execution["docker_cmd"].(string)
		return map[string]string{"docker_cmd": cmd}, nil
	}
	req := map[string]any{"id": []string{task}, "only_fields": []string{"container"}, "search_hidden": true}
	var resp struct {
		Tasks []struct {
			Container map[string]string `json:"container"`
		} `json:"tasks"`
	}
	if err := c.Call(ctx, "2.14", "tasks.get_all", req, &resp, Default); err != nil {
		return nil, err
	}
	if len(resp.Tasks) == 0 {
		return nil, fmt.Errorf("calling tasks.get_all: task %s: %w", task, ErrNotFound)
	}
	return resp.Tasks[0].Container, nil
}

// EditContainer writes a task's container section (/v2.13/tasks.edit,
// force), as upstream writes the default image back to a task that had
// none. Servers older than API 2.13 have no such section: nothing is written.
func (c *Client) EditContainer(ctx context.Context, task string, container map[string]string) error {
	if !c.AtLeastVersion("2.13") {
		return nil // no container section to write to
	}
	return c.Call(ctx, "2.13", "tasks.edit", map[string]any{"task": task, "force": true, "container": container}, nil, Default)
}
