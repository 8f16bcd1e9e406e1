package store

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Group commit for SQLite. SQLite runs one write transaction at a time and
// most of a small transaction's cost is its commit (writing the changed
// pages to the WAL). Update calls that arrive while one is running are
// therefore collected and run together in one transaction, which commits
// once. Should a call fail, the batch runs again with each call inside
// its own savepoint, so that the failing call rolls back only its own
// changes. Callers see the same semantics as separate transactions.

// maxBatch bounds how many Update calls share one commit.
const maxBatch = 64

type batchReq struct {
	ctx  context.Context
	fn   func(Tx) error
	done chan error
}

// startWriter starts the goroutine that owns the SQLite write connection.
func (s *sqlStore) startWriter() {
	s.reqs = make(chan *batchReq)
	s.stopWriter = make(chan struct{})
	s.writerDone = make(chan struct{})
	go func() {
		defer close(s.writerDone)
		for {
			var first *batchReq
			select {
			case first = <-s.reqs:
			case <-s.stopWriter:
				return
			}
			batch := []*batchReq{first}
			// Let callers that are about to submit do so: on a small machine
			// the writer otherwise wins every race and commits alone.
			runtime.Gosched()
		collect:
			for len(batch) < maxBatch {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				default:
					break collect
				}
			}
			s.runBatch(batch)
		}
	}()
}

// updateBatched hands fn to the writer and waits for its result.
func (s *sqlStore) updateBatched(ctx context.Context, fn func(Tx) error) error {
	r := &batchReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.writerDone:
		return fmt.Errorf("store is closed")
	}
	// Once handed over, fn runs; wait for the outcome even if ctx ends, so
	// that the caller never reports a failure for a change that committed.
	return <-r.done
}

func (s *sqlStore) runBatch(batch []*batchReq) {
	results := make([]error, len(batch))
	// First without savepoints: a savepoint costs two statements and a
	// copy of every page its call changes (SQLite's sub-journal), and
	// calls rarely fail. Should one fail, the transaction is rolled back
	// and the batch runs again, each call in its savepoint (fn may run
	// more than once: see Store.Update).
	if len(batch) == 1 || !s.runBatchTx(batch, results, false) {
		s.runBatchTx(batch, results, len(batch) > 1)
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// runBatchTx runs the batch in one transaction and records each call's
// outcome in results. With savepoints a failing call rolls back only its
// own changes. Without them the first failure rolls back everything and
// runBatchTx returns false: results are then void.
func (s *sqlStore) runBatchTx(batch []*batchReq, results []error, savepoints bool) bool {
	ctx := context.Background()
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		for i := range results {
			results[i] = fmt.Errorf("beginning transaction: %w", err)
		}
		return true
	}
	var misses []string
	defer func() {
		if c := s.stmts[s.write]; c != nil && len(misses) > 0 {
			c.prepare(s.write, misses)
		}
	}()
	for i, r := range batch {
		// Statements run on a context the caller cannot cancel: an
		// interrupted SQLite statement would roll back the whole batch.
		t := &sqlTx{s: s, q: tx, tx: tx, pool: s.write, ctx: context.WithoutCancel(r.ctx), writable: true}
		if savepoints {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT batch_item"); err != nil {
				results[i] = fmt.Errorf("starting savepoint: %w", err)
				continue
			}
		}
		results[i] = callSafely(r.fn, t)
		misses = append(misses, t.misses...)
		if !savepoints {
			if results[i] != nil {
				tx.Rollback()
				return len(batch) == 1
			}
			continue
		}
		if results[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO batch_item"); err != nil {
				results[i] = fmt.Errorf("%w (and rolling back: %v)", results[i], err)
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE batch_item"); err != nil && results[i] == nil {
			results[i] = fmt.Errorf("releasing savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("committing: %w", err)
			}
		}
	}
	return true
}

// callSafely runs fn, turning a panic into an error: it runs on the
// writer goroutine, where a panic would take the whole server down.
func callSafely(fn func(Tx) error, t *sqlTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(t)
}
