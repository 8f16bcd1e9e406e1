package store

import (
	"database/sql"
	"errors"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// The states of a hand-out (a task's row in task_leases). A hand-out
// that became moot (its task left the queued status some other way) has
// no row: DropLease.
const (
	// LeaseHeld: handed out, not yet acknowledged; Until is its deadline.
	LeaseHeld = "held"
	// LeaseAcked: acknowledged; Until is when the row is forgotten.
	LeaseAcked = "acked"
	// LeaseExpired: not acknowledged in time; the task went back to its
	// queue, and a late acknowledgement is refused.
	LeaseExpired = "expired"
)

// Lease is a task handed out by queues.get_next_task: it is not final
// until the worker acknowledges it before Until; otherwise the task goes
// back to its queue at the place it was taken from (Seq).
type Lease struct {
	TaskID  string
	ID      string
	Worker  string // the X-ClearML-Worker of the caller that took it
	QueueID string
	Seq     int64 // the entry's place in its queue
	Added   time.Time
	Until   time.Time
	State   string
}

func (t *sqlTx) LeaseHead(queueID, company string, l Lease) (*api.QueueEntry, string, error) {
	var taskID string
	var added int64
	if t.s.dialect == "postgres" {
		// One statement, one round trip: the queue's company, the pop (SKIP
		// LOCKED lets concurrent pollers each take a different head row),
		// the lease and the task's status, its row locked as TaskStatus
		// would.
		var status sql.NullString
		err := t.queryRow(`WITH popped AS (DELETE FROM queue_entries WHERE seq = (SELECT seq FROM queue_entries
			WHERE queue_id = ? AND EXISTS (SELECT 1 FROM queues WHERE id = ? AND company = ?)
			ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING seq, task_id, added_ms),
			leased AS (INSERT INTO task_leases (task_id, lease_id, worker, queue_id, seq, added_ms, until_ms, state)
			SELECT task_id, ?, ?, ?, seq, added_ms, ?, ? FROM popped
			ON CONFLICT (task_id) DO UPDATE SET lease_id = excluded.lease_id, worker = excluded.worker,
			queue_id = excluded.queue_id, seq = excluded.seq, added_ms = excluded.added_ms,
			until_ms = excluded.until_ms, state = excluded.state
			RETURNING task_id, added_ms)
			SELECT task_id, added_ms, (SELECT status FROM tasks WHERE id = leased.task_id FOR UPDATE) FROM leased`,
			queueID, queueID, company, l.ID, l.Worker, queueID, l.Until.UnixMilli(), LeaseHeld).Scan(&taskID, &added, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		return &api.QueueEntry{Task: taskID, Added: api.Time{Time: time.UnixMilli(added).UTC()}}, status.String, nil
	}
	// SQLite: the single writer makes the statements atomic. Two of them:
	// the pop, with the queue's company checked inside it, and the lease,
	// which reads the task's status.
	var seq int64
	err := t.queryRow(`DELETE FROM queue_entries WHERE seq = (SELECT seq FROM queue_entries WHERE queue_id = ?
		AND EXISTS (SELECT 1 FROM queues WHERE id = ? AND company = ?) ORDER BY seq LIMIT 1)
		RETURNING seq, task_id, added_ms`, queueID, queueID, company).Scan(&seq, &taskID, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var status sql.NullString
	err = t.queryRow(`INSERT INTO task_leases (task_id, lease_id, worker, queue_id, seq, added_ms, until_ms, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_id) DO UPDATE SET lease_id = excluded.lease_id, worker = excluded.worker,
		queue_id = excluded.queue_id, seq = excluded.seq, added_ms = excluded.added_ms,
		until_ms = excluded.until_ms, state = excluded.state
		RETURNING (SELECT status FROM tasks WHERE id = task_leases.task_id)`,
		taskID, l.ID, l.Worker, queueID, seq, added, l.Until.UnixMilli(), LeaseHeld).Scan(&status)
	if err != nil {
		return nil, "", err
	}
	return &api.QueueEntry{Task: taskID, Added: api.Time{Time: time.UnixMilli(added).UTC()}}, status.String, nil
}

func (t *sqlTx) TaskLease(taskID string) (*Lease, error) {
	lock := ""
	if t.writable && t.s.dialect == "postgres" {
		lock = " FOR UPDATE"
	}
	l := Lease{TaskID: taskID}
	var added, until int64
	err := t.queryRow(`SELECT lease_id, worker, queue_id, seq, added_ms, until_ms, state FROM task_leases
		WHERE task_id = ?`+lock, taskID).Scan(&l.ID, &l.Worker, &l.QueueID, &l.Seq, &added, &until, &l.State)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	l.Added, l.Until = time.UnixMilli(added).UTC(), time.UnixMilli(until).UTC()
	return &l, nil
}

func (t *sqlTx) AckLease(taskID string, forgetAt time.Time) error {
	_, err := t.exec(`UPDATE task_leases SET state = ?, until_ms = ? WHERE task_id = ? AND state = ?`,
		LeaseAcked, forgetAt.UnixMilli(), taskID, LeaseHeld)
	return err
}

func (t *sqlTx) ForgetLeases(now time.Time) (int, error) {
	res, err := t.exec(`DELETE FROM task_leases WHERE state = ? AND until_ms < ?`, LeaseAcked, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *sqlTx) DropLease(taskID string) error {
	_, err := t.exec(`DELETE FROM task_leases WHERE task_id = ?`, taskID)
	return err
}

func (t *sqlTx) SetLeaseState(taskID, state string) error {
	_, err := t.exec(`UPDATE task_leases SET state = ? WHERE task_id = ?`, state, taskID)
	return err
}

func (t *sqlTx) DueLeases(now time.Time, limit int) ([]Lease, error) {
	lock := ""
	if t.writable && t.s.dialect == "postgres" {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := t.query(`SELECT task_id, lease_id, worker, queue_id, seq, added_ms, until_ms FROM task_leases
		WHERE state = ? AND until_ms < ? ORDER BY until_ms LIMIT ?`+lock, LeaseHeld, now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		l := Lease{State: LeaseHeld}
		var added, until int64
		if err := rows.Scan(&l.TaskID, &l.ID, &l.Worker, &l.QueueID, &l.Seq, &added, &until); err != nil {
			return nil, err
		}
		l.Added, l.Until = time.UnixMilli(added).UTC(), time.UnixMilli(until).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

func (t *sqlTx) RestoreEntry(l Lease) (bool, error) {
	// The entry takes back its own seq: seqs only grow, so the one it had
	// is free, and the queue's order puts it where it was.
	res, err := t.exec(`INSERT INTO queue_entries (seq, queue_id, task_id, added_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		l.Seq, l.QueueID, l.TaskID, l.Added.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
