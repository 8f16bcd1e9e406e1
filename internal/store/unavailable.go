package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable is matched (errors.Is) by the errors of a database that
// cannot be reached or did not answer in time: a restart, a partition, a
// connection cut. Nothing was done, or (a cut during COMMIT) it is not
// known; the server answers 503 so that the client or the load balancer
// tries again, possibly on another replica.
var ErrUnavailable = errors.New("database unavailable")

// opTimeout bounds one PostgreSQL transaction or read: a database behind a
// partition must not hold a request (and the load balancer's connection)
// for the minutes TCP takes to give up.
const opTimeout = 15 * time.Second

type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return "database unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// classify marks err as ErrUnavailable when it says the database could not
// be reached or did not answer within opTimeout (not when the caller's own
// ctx ended: that is the caller's business).
func classify(parent context.Context, err error) error {
	if err == nil || parent.Err() != nil || errors.Is(err, ErrUnavailable) || !unreachable(err) {
		return err
	}
	return &unavailableError{err}
}

func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01-57P03: the server is shutting
		// down or starting; 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// bounded gives a PostgreSQL operation its deadline.
func (s *sqlStore) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.dialect != "postgres" {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}
