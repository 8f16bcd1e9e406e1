package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// Worker runtime properties: free key/value pairs per worker (the
// enterprise server's endpoints, which the upstream agent probes in its
// services and uptime modes, e.g. for a "force" on/off override). They are
// kept per company and worker id, apart from the worker entry, so they
// survive the entry's expiry and re-registration.

func workersGetRuntimeProperties(s *Server, c *call) (any, error) {
	var req struct {
		Worker string `json:"worker"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Worker == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "worker")
	}
	var props []store.WorkerProperty
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		props, err = tx.WorkerProperties(c.ident.Company, req.Worker, s.opts.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]api.RuntimeProperty, 0, len(props))
	for _, p := range props {
		rp := api.RuntimeProperty{Key: p.Key, Value: p.Value}
		if !p.Expires.IsZero() {
			left := int64(max(p.Expires.Sub(s.opts.Now()), 0) / time.Second)
			rp.Expiry = &left
		}
		out = append(out, rp)
	}
	return map[string]any{"runtime_properties": out}, nil
}

func workersSetRuntimeProperties(s *Server, c *call) (any, error) {
	var req struct {
		Worker            string `json:"worker"`
		RuntimeProperties []struct {
			Key    string          `json:"key"`
			Value  json.RawMessage `json:"value"`
			Expiry *int64          `json:"expiry"`
		} `json:"runtime_properties"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Worker == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "worker")
	}
	if req.RuntimeProperties == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "runtime_properties")
	}
	now := s.opts.Now()
	props := make([]store.WorkerProperty, 0, len(req.RuntimeProperties))
	for _, rp := range req.RuntimeProperties {
		if rp.Key == "" {
			return nil, api.ErrValidation.New("runtime property without a key")
		}
		value, err := scalarString(rp.Value)
		if err != nil {
			return nil, api.ErrValidation.New(fmt.Sprintf("runtime property %s: %v", rp.Key, err))
		}
		p := store.WorkerProperty{Key: rp.Key, Value: value}
		if rp.Expiry != nil {
			if *rp.Expiry < 0 {
				return nil, api.ErrValidation.New("expiry must not be negative", "key", rp.Key)
			}
			if *rp.Expiry > 0 {
				const century = 100 * 365 * 24 * 3600
				p.Expires = now.Add(seconds(min(*rp.Expiry, century)))
			}
		}
		props = append(props, p)
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		for _, p := range props {
			if err := tx.PutWorkerProperty(c.ident.Company, req.Worker, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"added": len(props)}, nil
}

// scalarString turns a JSON string, number or boolean into its text.
func scalarString(raw json.RawMessage) (string, error) {
	var v any
	if len(raw) == 0 {
		return "", nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case float64, bool:
		return string(raw), nil
	}
	return "", fmt.Errorf("value must be a string, a number or a boolean")
}
