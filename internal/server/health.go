package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/goclearml/agent/internal/store"
)

// healthTimeout bounds the database check of /healthz: a load balancer
// must hear "not ready" quickly, not wait for a database that hangs.
const healthTimeout = 2 * time.Second

// withHealth serves GET /healthz in front of next: 200 "ok" while the
// database answers and the server is not shutting down, 503 with the
// reason otherwise (a load balancer then
// sends the traffic to another replica). It needs no credentials and
// reads no body.
func withHealth(next http.Handler, st store.Store, draining func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if draining() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: shutting down\n"))
			return
		}
		if err := checkDatabase(r.Context(), st); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: database: " + err.Error() + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
}

// checkDatabase reads one row's worth from the database within
// healthTimeout.
func checkDatabase(ctx context.Context, st store.Store) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	err := st.View(ctx, func(tx store.Tx) error {
		_, err := tx.Task("healthz-probe")
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return errors.New("no answer within " + healthTimeout.String())
	}
	return err
}
