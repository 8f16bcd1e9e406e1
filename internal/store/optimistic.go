package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/goclearml/agent/internal/api"
)

// An enqueue on PostgreSQL without a transaction held open: the task is
// read with its row version (xmin), its new state computed, then written
// with its queue entry by one statement that applies only if the row is
// still that version. Two round trips where a transaction takes five
// (begin, the locked read, the entry, the task, commit). A task written in
// between makes the statement change nothing (Stale): the caller reads it
// again.

// EnqueueOutcome is what EnqueueTask did.
type EnqueueOutcome int

const (
	// Enqueued: the task's new state and its entry are written; it left
	// every other queue.
	Enqueued EnqueueOutcome = iota
	// EnqueueStale: the task changed since it was read; nothing written.
	EnqueueStale
	// EnqueueBadQueue: the queue is not the company's (or not there).
	EnqueueBadQueue
	// EnqueueAlreadyThere: the task is in that queue already.
	EnqueueAlreadyThere
	// EnqueueNeedsTransaction: the task's listing row must be rewritten
	// (see taskListUpdate); nothing written: enqueue in a transaction.
	EnqueueNeedsTransaction
)

func (o EnqueueOutcome) String() string {
	switch o {
	case Enqueued:
		return "enqueued"
	case EnqueueStale:
		return "stale"
	case EnqueueBadQueue:
		return "bad queue"
	case EnqueueAlreadyThere:
		return "already there"
	case EnqueueNeedsTransaction:
		return "needs a transaction"
	}
	return fmt.Sprintf("EnqueueOutcome(%d)", int(o))
}

// TaskVersion reads a task without locking it, with its row version for
// EnqueueTask. PostgreSQL only: errors.ErrUnsupported on SQLite, where a
// transaction costs no round trips.
func (s *sqlStore) TaskVersion(parent context.Context, id string) (*api.Task, string, error) {
	if s.dialect != "postgres" {
		return nil, "", errors.ErrUnsupported
	}
	ctx, cancel := s.bounded(parent)
	defer cancel()
	var doc, version string
	err := s.read.QueryRowContext(ctx, `SELECT doc, xmin::text FROM tasks WHERE id = $1`, id).Scan(&doc, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", classify(parent, err)
	}
	t := new(api.Task)
	if err := json.Unmarshal([]byte(doc), t); err != nil {
		return nil, "", fmt.Errorf("decoding stored document: %w", err)
	}
	return t, version, nil
}

// EnqueueTask writes task (read by TaskVersion at version, its status now
// queued) and its entry in a company's queue, added at added, and takes it
// out of every other queue, in one statement, as Tx.PutTask and
// Tx.EnqueueEntry would in a transaction. PostgreSQL only.
func (s *sqlStore) EnqueueTask(parent context.Context, task *api.Task, version, queueID, company string, added api.Time) (EnqueueOutcome, error) {
	if s.dialect != "postgres" {
		return 0, errors.ErrUnsupported
	}
	doc, err := marshal(task)
	if err != nil {
		return 0, err
	}
	var lu int64
	if task.LastUpdate != nil {
		lu = task.LastUpdate.UnixMilli()
	}
	// The task's write needs the row version read, the queue, no entry
	// there yet, and its listing row as taskListUpdate writes it in place.
	// Entries and listing rows change only with their task's row, so the
	// version check covers them.
	const (
		queueOK = `EXISTS (SELECT 1 FROM queues WHERE id = $1 AND company = $2)`
		current = `EXISTS (SELECT 1 FROM tasks WHERE id = $3 AND xmin::text = $4)`
		inQueue = `EXISTS (SELECT 1 FROM queue_entries WHERE queue_id = $1 AND task_id = $3)`
	)
	// $5 to $13: the listing row's guarded columns (company $5, project $10;
	// see enqueueListedOK), then the values written from $14.
	keys := append([]any{queueID, company, task.ID, version}, listingGuardArgs(task)...)
	var written int
	err = s.retry(parent, func(ctx context.Context) error {
		return s.write.QueryRowContext(ctx, `WITH u AS (UPDATE tasks SET company = $5, status = $14, project = $10,
				last_update_ms = $15, doc = $16
				WHERE id = $3 AND xmin::text = $4 AND `+queueOK+` AND `+enqueueListedOK+` AND NOT `+inQueue+` RETURNING id),
			l AS (UPDATE task_list SET status = $14, user_id = $17, last_update_us = $18
				WHERE id = (SELECT id FROM u) RETURNING id),
			ins AS (INSERT INTO queue_entries (queue_id, task_id, added_ms) SELECT $1, id, $19 FROM u
				ON CONFLICT DO NOTHING RETURNING task_id),
			others AS (DELETE FROM queue_entries WHERE task_id = $3 AND queue_id <> $1 AND EXISTS (SELECT 1 FROM u))
			SELECT count(*) FROM u`,
			append(keys, task.Status, lu, doc, task.User, micros(task.LastUpdate), added.UnixMilli())...,
		).Scan(&written)
	})
	if err != nil {
		return 0, err
	}
	if written == 1 {
		return Enqueued, nil
	}
	// Nothing written: which condition failed (read again, in a snapshot
	// of its own; a task that changed reads as stale either way).
	var queueFound, isCurrent, there, listed bool
	err = s.retry(parent, func(ctx context.Context) error {
		return s.read.QueryRowContext(ctx, `SELECT `+queueOK+`, `+current+`, `+inQueue+`, `+enqueueListedOK, keys...).
			Scan(&queueFound, &isCurrent, &there, &listed)
	})
	switch {
	case err != nil:
		return 0, err
	case !queueFound:
		return EnqueueBadQueue, nil
	case !isCurrent:
		return EnqueueStale, nil
	case there:
		return EnqueueAlreadyThere, nil
	case !listed:
		return EnqueueNeedsTransaction, nil
	}
	// Every condition held in the statement's snapshot, but the row was
	// written by another transaction before this one could.
	return EnqueueStale, nil
}

// enqueueListedOK is EnqueueTask's condition on the task's listing row:
// its guarded columns (listingGuard) hold $5 to $13.
var enqueueListedOK = `EXISTS (SELECT 1 FROM task_list WHERE id = $3 AND ` +
	listingGuard("postgres", func(i int) string { return fmt.Sprintf("$%d", 5+i) }) + `)`
