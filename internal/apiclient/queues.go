package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// GetDefaultQueue returns the queue that carries the system tag "default"
// (/v2.5/queues.get_default). The server answers 400/707 when there is
// none; upstream then falls back to a queue named "default".
func (c *Client) GetDefaultQueue(ctx context.Context) (id, name string, err error) {
	var resp struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := c.Call(ctx, "2.5", "queues.get_default", struct{}{}, &resp, Default); err != nil {
		return "", "", err
	}
	return resp.ID, resp.Name, nil
}

// QueuesByName returns the queues whose name contains name (an escaped,
// unanchored pattern, as upstream sends), hidden ones included, with only
// id and name filled (/v2.5/queues.get_all). Callers pick the exact match;
// the rest serve as suggestions.
func (c *Client) QueuesByName(ctx context.Context, name string) ([]api.Queue, error) {
	req := map[string]any{"name": regexp.QuoteMeta(name), "only_fields": []string{"name", "id"}, "search_hidden": true}
	return c.getQueues(ctx, req)
}

// QueuesByID returns the queues with the given ids (/v2.5/queues.get_all),
// projected to onlyFields unless it is nil. No ids: no call, no queues.
func (c *Client) QueuesByID(ctx context.Context, ids []string, onlyFields []string) ([]api.Queue, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	req := map[string]any{"id": ids}
	if onlyFields != nil {
		req["only_fields"] = onlyFields
	}
	return c.getQueues(ctx, req)
}

// queueWire reads a queue whatever the version: requests at API 2.16 and
// below get metadata as an empty list instead of an object.
type queueWire struct {
	api.Queue
	Metadata json.RawMessage `json:"metadata"`
}

func (c *Client) getQueues(ctx context.Context, req map[string]any) ([]api.Queue, error) {
	var resp struct {
		Queues []queueWire `json:"queues"`
	}
	if err := c.Call(ctx, "2.5", "queues.get_all", req, &resp, Default); err != nil {
		return nil, err
	}
	out := make([]api.Queue, len(resp.Queues))
	for i, q := range resp.Queues {
		out[i] = q.Queue
		if m := bytes.TrimSpace(q.Metadata); len(m) > 0 && m[0] == '{' {
			_ = json.Unmarshal(m, &out[i].Metadata) // informational; a bad map is dropped
		}
	}
	return out, nil
}

// CreateQueue creates a queue and returns its id (/v2.5/queues.create).
func (c *Client) CreateQueue(ctx context.Context, name string) (string, error) {
	var resp api.IDResponse
	if err := c.Call(ctx, "2.5", "queues.create", map[string]any{"name": name}, &resp, Default); err != nil {
		return "", err
	}
	return resp.ID, nil
}

// GetNextTask pops the head of a queue (/v2.14/queues.get_next_task) and
// returns nil when the queue is empty. With waitMS > 0 and a server that
// advertises the "long_poll" extension, the server waits up to waitMS for a
// task to arrive, and the attempt timeout grows by as much; otherwise it
// answers at once. It uses the Poll budget: the caller polls again anyway.
func (c *Client) GetNextTask(ctx context.Context, queue string, waitMS int) (*api.QueueEntry, error) {
	req := map[string]any{"queue": queue}
	r, err := c.newRequest("2.14", "queues.get_next_task", nil)
	if err != nil {
		return nil, fmt.Errorf("calling queues.get_next_task: %w", err)
	}
	if waitMS > 0 && c.hasExtensionAfterLogin(ctx, "long_poll") {
		req["wait_ms"] = waitMS
		r.wait = time.Duration(waitMS) * time.Millisecond
	}
	if r.body, err = json.Marshal(req); err != nil {
		return nil, fmt.Errorf("calling queues.get_next_task: encoding request: %w", err)
	}
	var resp api.GetNextTaskResponse
	if err := c.do(ctx, r, &resp, Poll); err != nil {
		return nil, err
	}
	if resp.Entry == nil || resp.Entry.Task == "" {
		return nil, nil
	}
	if resp.Lease != nil {
		resp.Entry.Lease = resp.Lease.ID
	}
	return resp.Entry, nil
}

// hasExtensionAfterLogin is HasExtension, logging in first if the client
// has no token yet (the claims come with it). A failed login reads as
// "no extension"; the call that follows reports the error.
func (c *Client) hasExtensionAfterLogin(ctx context.Context, name string) bool {
	if c.Token() == "" {
		_, _ = c.currentToken(ctx)
	}
	return c.HasExtension(name)
}
