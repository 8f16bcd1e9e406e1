package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// GetNextTaskWithOwner pops the head of a queue like GetNextTask and also
// returns the task owner's user and company (get_task_info), for
// --use-owner-token.
func (c *Client) GetNextTaskWithOwner(ctx context.Context, queue string) (entry *api.QueueEntry, user, company string, err error) {
	var resp api.GetNextTaskResponse
	if err := c.Call(ctx, "2.14", "queues.get_next_task", map[string]any{"queue": queue, "get_task_info": true}, &resp, Poll); err != nil {
		return nil, "", "", err
	}
	if resp.Entry == nil || resp.Entry.Task == "" {
		return nil, "", "", nil
	}
	if resp.Lease != nil {
		resp.Entry.Lease = resp.Lease.ID
	}
	if resp.TaskInfo != nil {
		user, _ = (*resp.TaskInfo)["user"].(string)
		company, _ = (*resp.TaskInfo)["company"].(string)
	}
	return resp.Entry, user, company, nil
}

// TokenFor gets a token that acts as another user: auth.login with this
// client's token and X-Clearml-Impersonate-As (spec 2.7). The server only
// allows it to admin and system identities.
func (c *Client) TokenFor(ctx context.Context, userID string) (string, error) {
	tok, err := c.currentToken(ctx)
	if err != nil {
		return "", err
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, c.base+"/auth.login", nil)
	if err != nil {
		return "", fmt.Errorf("building auth.login request: %w", err)
	}
	c.setHeaders(req.Header, "Bearer "+tok)
	req.Header.Set("X-Clearml-Impersonate-As", userID)
	status, body, _, err := c.roundTrip(ctx, req)
	if err != nil {
		return "", fmt.Errorf("logging in as user %s: %w", userID, err)
	}
	data, err := decodeEnvelope(status, body)
	if err != nil {
		return "", fmt.Errorf("logging in as user %s: %w", userID, err)
	}
	var lr api.LoginResponse
	if err := json.Unmarshal(data, &lr); err != nil || lr.Token == "" {
		return "", errors.Join(fmt.Errorf("logging in as user %s: no token in the answer", userID), err)
	}
	return lr.Token, nil
}

// WithToken returns a client for the same server that authenticates with
// token (refreshed with itself as Bearer), such as one from TokenFor.
func (c *Client) WithToken(token string) (*Client, error) {
	cfg := c.cfg
	cfg.AccessKey, cfg.SecretKey, cfg.Token = "", "", token
	if cfg.RefreshThreshold == 0 {
		cfg.RefreshThreshold = 12 * time.Hour
	}
	return New(cfg)
}
