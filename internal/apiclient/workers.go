package apiclient

import (
	"context"
	"time"
)

// RegisterWorker registers a worker id listening to the given queue ids
// (unversioned workers.register; the server's default timeout of 600 s
// applies). tags are sent only when non-nil.
func (c *Client) RegisterWorker(ctx context.Context, worker string, queues []string, tags []string) error {
	if queues == nil {
		queues = []string{}
	}
	req := map[string]any{"worker": worker, "queues": queues}
	if tags != nil {
		req["tags"] = tags
	}
	return c.Call(ctx, "", "workers.register", req, nil, Default)
}

// UnregisterWorker removes a worker entry (unversioned workers.unregister).
// It uses the Final budget; bound it with ctx at shutdown.
func (c *Client) UnregisterWorker(ctx context.Context, worker string) error {
	return c.Call(ctx, "", "workers.unregister", map[string]any{"worker": worker}, nil, Final)
}

// StatusReport is one worker heartbeat.
type StatusReport struct {
	Worker string
	// Task and Queue name the task being run and the queue it came from;
	// empty while idle.
	Task, Queue string
	// Queues are the queue ids listened to; nil leaves them unchanged.
	Queues []string
	// Tags replace the worker's tags; nil leaves them unchanged.
	Tags []string
	// MachineStats are the averaged machine statistics (spec 4.2); may be nil.
	MachineStats map[string]any
	// Timestamp is the report time; zero means now.
	Timestamp time.Time
}

// statusReportBody is StatusReport as upstream sends it: timestamp in epoch
// milliseconds, machine_stats and tags null when absent, is_daemon true,
// task and queue omitted when empty, queues omitted when nil.
type statusReportBody struct {
	Worker       string         `json:"worker"`
	Timestamp    int64          `json:"timestamp"`
	MachineStats map[string]any `json:"machine_stats"`
	Tags         []string       `json:"tags"`
	IsDaemon     bool           `json:"is_daemon"`
	Task         string         `json:"task,omitempty"`
	Queue        string         `json:"queue,omitempty"`
	Queues       *[]string      `json:"queues,omitempty"`
}

// StatusReport sends a heartbeat (unversioned workers.status_report, Poll
// budget: a lost report is followed by the next one).
func (c *Client) StatusReport(ctx context.Context, r StatusReport) error {
	ts := r.Timestamp
	if ts.IsZero() {
		ts = c.now()
	}
	body := statusReportBody{Worker: r.Worker, Timestamp: ts.UnixMilli(), MachineStats: r.MachineStats, Tags: r.Tags,
		IsDaemon: true, Task: r.Task, Queue: r.Queue}
	if r.Queues != nil {
		body.Queues = &r.Queues
	}
	return c.Call(ctx, "", "workers.status_report", body, nil, Poll)
}

// WorkerIDs lists the ids of the workers the server has seen in the last
// 600 s (/v2.5/workers.get_all, last_seen), as upstream reads which GPUs
// other workers of the host hold.
func (c *Client) WorkerIDs(ctx context.Context) ([]string, error) {
	var resp struct {
		Workers []struct {
			ID string `json:"id"`
		} `json:"workers"`
	}
	if err := c.Call(ctx, "2.5", "workers.get_all", map[string]any{"last_seen": 600}, &resp, Poll); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(resp.Workers))
	for _, w := range resp.Workers {
		ids = append(ids, w.ID)
	}
	return ids, nil
}
