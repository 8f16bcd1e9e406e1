package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/goclearml/agent/internal/api"
)

// readEventLines decodes an events.add_batch body as it arrives: JSON
// lines, each an event object or a JSON array of them. Each event is
// validated and kept in its stored form only; a line that is not JSON
// fails the whole request (400) before anything is stored.
func (s *Server) readEventLines(c *call, b *eventBatch) error {
	return eachLine(c.stream, s.opts.MaxBodyBytes, func(n int, line []byte) error {
		if bytes.Equal(line, []byte("null")) {
			return nil // a JSON null body means "no events"
		}
		if !json.Valid(line) {
			return &api.Error{Code: 400, Msg: fmt.Sprintf("Invalid JSON on line %d: %s", n, jsonError(line)), Data: map[string]any{}}
		}
		if err := measureJSON(line).tooDense(len(line)); err != nil {
			return api.ErrValidation.New(fmt.Sprintf("line %d: %v", n, err))
		}
		switch line[0] {
		case '{':
			return b.add(s, c, line)
		case '[': // a JSON array of objects is accepted too
			return s.addEventArray(c, b, n, line)
		default:
			return &api.Error{Code: 400, Msg: fmt.Sprintf("Invalid JSON on line %d: not an object", n), Data: map[string]any{}}
		}
	})
}

// addEventArray adds the events of a line holding a JSON array (valid
// JSON), one item at a time.
func (s *Server) addEventArray(c *call, b *eventBatch, n int, line []byte) error {
	d := json.NewDecoder(bytes.NewReader(line))
	if _, err := d.Token(); err != nil { // '['
		return fmt.Errorf("reading batch line %d: %w", n, err)
	}
	for d.More() {
		var item json.RawMessage
		if err := d.Decode(&item); err != nil {
			return fmt.Errorf("reading batch line %d: %w", n, err)
		}
		if t := bytes.TrimSpace(item); len(t) == 0 || t[0] != '{' {
			return &api.Error{Code: 400, Msg: fmt.Sprintf("Invalid batch item on line %d: not an object", n), Data: map[string]any{}}
		}
		if err := b.add(s, c, item); err != nil {
			return err
		}
	}
	return nil
}
