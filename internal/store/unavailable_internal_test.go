package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassifyUnavailable(t *testing.T) {
	t.Parallel()
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		parent context.Context
		err    error
		want   bool
	}{
		{"connection failure (08006)", live, &pgconn.PgError{Code: "08006"}, true},
		{"admin shutdown (57P01)", live, fmt.Errorf("querying: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"starting up (57P03)", live, &pgconn.PgError{Code: "57P03"}, true},
		{"unique violation (23505)", live, &pgconn.PgError{Code: "23505"}, false},
		{"our deadline", live, fmt.Errorf("beginning transaction: %w", context.DeadlineExceeded), true},
		{"the caller went away", gone, context.Canceled, false},
		{"the caller went away during a cut", gone, &net.OpError{Op: "read", Err: errors.New("reset")}, false},
		{"network error", live, &net.OpError{Op: "dial", Err: errors.New("no route to host")}, true},
		{"cut mid-answer", live, io.ErrUnexpectedEOF, true},
		{"not found", live, ErrNotFound, false},
		{"plain error", live, errors.New("bad column"), false},
		{"nil", live, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.parent, tc.err)
			if is := errors.Is(got, ErrUnavailable); is != tc.want {
				t.Fatalf("classify(%v) = %v: unavailable %v, want %v", tc.err, got, is, tc.want)
			}
			if tc.err != nil && !errors.Is(got, tc.err) {
				t.Fatalf("classify(%v) = %v lost the cause", tc.err, got)
			}
		})
	}
}
