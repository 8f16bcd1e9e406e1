package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/goclearml/agent/internal/api"
)

// recorder is an in-memory http.ResponseWriter for in-process API calls.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// call runs one API call in process with the credentials auth (the value
// of an Authorization header) and decodes the answer's data into out. An
// error answer is returned as an *api.Error.
func (u *UI) call(ctx context.Context, auth, endpoint string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encoding %s: %w", endpoint, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/"+endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("calling %s: %w", endpoint, err)
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := &recorder{header: http.Header{}}
	u.cfg.API.ServeHTTP(rec, req)
	var env api.Envelope
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil {
		return fmt.Errorf("calling %s: answer is not an envelope (HTTP %d)", endpoint, rec.code)
	}
	if env.Meta.ResultCode != http.StatusOK {
		return &api.Error{Code: env.Meta.ResultCode, Subcode: env.Meta.ResultSubcode, Msg: env.Meta.ResultMsg}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("decoding %s: %w", endpoint, err)
		}
	}
	return nil
}

// call runs an API call as the session's user.
func (s *session) call(ctx context.Context, endpoint string, in, out any) error {
	return s.ui.call(ctx, s.auth, endpoint, in, out)
}

// notFound reports an API error that means "no such object".
func notFound(err error) bool {
	for _, c := range []api.ErrorCode{api.ErrInvalidTaskID, api.ErrInvalidQueueID, api.ErrInvalidModelID,
		api.ErrInvalidProjectID, api.ErrInvalidID} {
		if c.Is(err) {
			return true
		}
	}
	return false
}

// message is what the UI shows for a failed call: the API's own message.
func message(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Msg
	}
	return err.Error()
}

func asAPIError(err error) (*api.Error, bool) {
	var ae *api.Error
	ok := errors.As(err, &ae)
	return ae, ok
}
