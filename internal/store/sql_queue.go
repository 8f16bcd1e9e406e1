package store

import (
	"cmp"
	"database/sql"
	"errors"
	"time"

	"github.com/goclearml/agent/internal/api"
)

func (t *sqlTx) AddEntry(queueID, taskID string, added api.Time) (bool, error) {
	res, err := t.exec(`INSERT INTO queue_entries (queue_id, task_id, added_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		queueID, taskID, added.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *sqlTx) EnqueueEntry(queueID, company, taskID string, added api.Time) (bool, error) {
	if t.s.dialect == "postgres" {
		// One statement, one round trip: the queue's company, the entry,
		// the task's entries in other queues.
		var queues, n int
		err := t.queryRow(`WITH q AS (SELECT 1 FROM queues WHERE id = ? AND company = ?),
			ins AS (INSERT INTO queue_entries (queue_id, task_id, added_ms) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM q)
			ON CONFLICT DO NOTHING RETURNING task_id),
			others AS (DELETE FROM queue_entries WHERE task_id = ? AND queue_id <> ? AND EXISTS (SELECT 1 FROM ins))
			SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM ins)`,
			queueID, company, queueID, taskID, added.UnixMilli(), taskID, queueID).Scan(&queues, &n)
		if err == nil && queues == 0 {
			err = ErrNotFound
		}
		return n == 1, err
	}
	// SQLite: the queue's company is checked by the insert; only an entry
	// not added needs telling apart from a queue not the company's.
	res, err := t.exec(`INSERT INTO queue_entries (queue_id, task_id, added_ms) SELECT ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM queues WHERE id = ? AND company = ?) ON CONFLICT DO NOTHING`,
		queueID, taskID, added.UnixMilli(), queueID, company)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			if c, qerr := t.QueueCompany(queueID); qerr != nil || c != company {
				err = cmp.Or(qerr, ErrNotFound)
			}
		}
		return false, err
	}
	_, err = t.RemoveTaskEntries(taskID, queueID)
	return true, err
}

func (t *sqlTx) RemoveEntry(queueID, taskID string) (int, error) {
	res, err := t.exec(`DELETE FROM queue_entries WHERE queue_id = ? AND task_id = ?`, queueID, taskID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *sqlTx) RemoveTaskEntries(taskID, exceptQueue string) (int, error) {
	res, err := t.exec(`DELETE FROM queue_entries WHERE task_id = ? AND queue_id <> ?`, taskID, exceptQueue)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *sqlTx) PopEntry(queueID string) (*api.QueueEntry, error) {
	// On PostgreSQL, SKIP LOCKED lets concurrent pollers each take a
	// different head row instead of queueing behind one another; on SQLite
	// the single writer makes the statement atomic on its own.
	lock := ""
	if t.s.dialect == "postgres" {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var taskID string
	var added int64
	err := t.queryRow(`DELETE FROM queue_entries WHERE seq = (SELECT seq FROM queue_entries WHERE queue_id = ?
		ORDER BY seq LIMIT 1`+lock+`) RETURNING task_id, added_ms`, queueID).Scan(&taskID, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &api.QueueEntry{Task: taskID, Added: api.Time{Time: time.UnixMilli(added).UTC()}}, nil
}

func (t *sqlTx) Entries(queueID string, limit int) ([]api.QueueEntry, error) {
	q := `SELECT task_id, added_ms FROM queue_entries WHERE queue_id = ? ORDER BY seq`
	args := []any{queueID}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.QueueEntry{}
	for rows.Next() {
		var e api.QueueEntry
		var added int64
		if err := rows.Scan(&e.Task, &added); err != nil {
			return nil, err
		}
		e.Added = api.Time{Time: time.UnixMilli(added).UTC()}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (t *sqlTx) CountEntries(queueID string) (int, error) {
	var n int
	err := t.queryRow(`SELECT COUNT(*) FROM queue_entries WHERE queue_id = ?`, queueID).Scan(&n)
	return n, err
}

func (t *sqlTx) TaskQueues(taskID string) ([]string, error) {
	rows, err := t.query(`SELECT queue_id FROM queue_entries WHERE task_id = ? ORDER BY seq`, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

func (t *sqlTx) AddEvent(e *Event) error {
	if e.Key != "" {
		if _, err := t.exec(`DELETE FROM events WHERE ekey = ?`, e.Key); err != nil {
			return err
		}
	}
	_, err := t.exec(`INSERT INTO events (task_id, etype, ts, iter, metric, variant, ekey, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.TaskID, e.Type, e.Timestamp, e.Iter, e.Metric, e.Variant, e.Key, string(e.Doc))
	return err
}

func (t *sqlTx) Events(q EventQuery) ([]Event, error) {
	query := `SELECT seq, task_id, etype, ts, iter, metric, variant, ekey, doc FROM events WHERE task_id = ?`
	args := []any{q.TaskID}
	if len(q.Types) > 0 {
		cond, arg, err := t.typeCond(q.Types)
		if err != nil {
			return nil, err
		}
		query += ` AND ` + cond
		args = append(args, arg)
	}
	if c := q.After; c != nil {
		switch {
		case q.Desc && c.Seq == 0:
			query += ` AND ts < ?`
			args = append(args, c.Timestamp)
		case q.Desc:
			query += ` AND (ts < ? OR (ts = ? AND seq < ?))`
			args = append(args, c.Timestamp, c.Timestamp, c.Seq)
		case c.Seq == 0:
			query += ` AND ts > ?`
			args = append(args, c.Timestamp)
		default:
			query += ` AND (ts > ? OR (ts = ? AND seq > ?))`
			args = append(args, c.Timestamp, c.Timestamp, c.Seq)
		}
	}
	if q.Desc {
		query += ` ORDER BY ts DESC, seq DESC`
	} else {
		query += ` ORDER BY ts, seq`
	}
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var doc string
		if err := rows.Scan(&e.Seq, &e.TaskID, &e.Type, &e.Timestamp, &e.Iter, &e.Metric, &e.Variant, &e.Key, &doc); err != nil {
			return nil, err
		}
		e.Doc = []byte(doc)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (t *sqlTx) CountEvents(taskID string, types []string) (int, error) {
	query := `SELECT COUNT(*) FROM events WHERE task_id = ?`
	args := []any{taskID}
	if len(types) > 0 {
		cond, arg, err := t.typeCond(types)
		if err != nil {
			return 0, err
		}
		query += ` AND ` + cond
		args = append(args, arg)
	}
	var n int
	err := t.queryRow(query, args...).Scan(&n)
	return n, err
}

func (t *sqlTx) CountEventsMax(taskID string, types []string, max int) (int, error) {
	query := `SELECT 1 FROM events WHERE task_id = ?`
	args := []any{taskID}
	if len(types) > 0 {
		cond, arg, err := t.typeCond(types)
		if err != nil {
			return 0, err
		}
		query += ` AND ` + cond
		args = append(args, arg)
	}
	var n int
	err := t.queryRow(`SELECT COUNT(*) FROM (`+query+` LIMIT ?) AS capped`, append(args, max)...).Scan(&n)
	return n, err
}

func (t *sqlTx) DeleteEvents(taskID string) (int, error) {
	res, err := t.exec(`DELETE FROM events WHERE task_id = ?`, taskID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *sqlTx) MoveEntry(queueID, taskID string, index int) (int, error) {
	lock := ""
	if t.writable && t.s.dialect == "postgres" {
		lock = " FOR UPDATE"
	}
	rows, err := t.query(`SELECT seq, task_id FROM queue_entries WHERE queue_id = ? ORDER BY seq`+lock, queueID)
	if err != nil {
		return 0, err
	}
	var seqs []int64
	var tasks []string
	for rows.Next() {
		var seq int64
		var task string
		if err := rows.Scan(&seq, &task); err != nil {
			rows.Close()
			return 0, err
		}
		seqs, tasks = append(seqs, seq), append(tasks, task)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	from := -1
	for i, id := range tasks {
		if id == taskID {
			from = i
		}
	}
	if from < 0 {
		return 0, ErrNotFound
	}
	to := max(0, min(index, len(tasks)-1))
	if from == to {
		return to, nil
	}
	order := append([]string{}, tasks[:from]...)
	order = append(order, tasks[from+1:]...)
	order = append(order[:to], append([]string{taskID}, order[to:]...)...)
	// The entries between the two positions take each other's seq values,
	// so the queue keeps its set of seqs and entries added meanwhile stay
	// behind it. Seqs are unique in the table: the changed rows first move
	// to their own negated seq (no row has a negative one), then to their
	// final one.
	lo, hi := min(from, to), max(from, to)
	for i := lo; i <= hi; i++ {
		if _, err := t.exec(`UPDATE queue_entries SET seq = ? WHERE seq = ?`, -seqs[i], seqs[i]); err != nil {
			return 0, err
		}
	}
	byTask := make(map[string]int64, hi-lo+1)
	for i := lo; i <= hi; i++ {
		byTask[tasks[i]] = seqs[i]
	}
	for i := lo; i <= hi; i++ {
		if _, err := t.exec(`UPDATE queue_entries SET seq = ? WHERE seq = ?`, seqs[i], -byTask[order[i]]); err != nil {
			return 0, err
		}
	}
	return to, nil
}

// typeCond is the event type condition: an equality for one type, which
// lets PostgreSQL read a task's events of that type in index order (with
// an IN list it sorted every event of the task: five seconds for the
// newest page of a million-line log), else an IN list.
func (t *sqlTx) typeCond(types []string) (string, any, error) {
	if len(types) == 1 {
		return "etype = ?", types[0], nil
	}
	return t.inList("etype", types)
}
