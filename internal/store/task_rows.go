package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/goclearml/agent/internal/api"
)

// taskKeys are the indexed columns of a task's row (besides its id), as
// this transaction last read or wrote them.
type taskKeys struct{ company, status, project string }

func keysOf(task *api.Task) taskKeys {
	return taskKeys{company: task.Company, status: task.Status, project: task.Project}
}

// remember notes a task row's indexed columns for a later PutTask in the
// same transaction. Only SQLite's writes use it (see PutTask).
func (t *sqlTx) remember(id string, k taskKeys) {
	if !t.writable || t.s.dialect == "postgres" {
		return
	}
	if t.known == nil {
		t.known = map[string]taskKeys{}
	}
	t.known[id] = k
}

func (t *sqlTx) Task(id string) (*api.Task, error) {
	var doc string
	var k taskKeys
	err := t.queryRow(`SELECT doc, company, status, project FROM tasks WHERE id = ?`+t.lockClause(), id).
		Scan(&doc, &k.company, &k.status, &k.project)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	task := new(api.Task)
	if err := json.Unmarshal([]byte(doc), task); err != nil {
		return nil, fmt.Errorf("decoding stored document: %w", err)
	}
	t.remember(id, k)
	return task, nil
}

func (t *sqlTx) TaskStatus(id string) (string, string, error) {
	var status, company string
	err := t.queryRow(`SELECT status, company FROM tasks WHERE id = ?`+t.lockClause(), id).Scan(&status, &company)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return status, company, err
}

func (t *sqlTx) PutTask(task *api.Task) error {
	doc, err := marshal(task)
	if err != nil {
		return err
	}
	var lu int64
	if task.LastUpdate != nil {
		lu = task.LastUpdate.UnixMilli()
	}
	if t.s.dialect == "postgres" {
		return t.putTaskPostgres(task, doc, lu)
	}
	prev := t.known[task.ID]
	written, err := t.updateKnownTask(task, doc, lu)
	if err != nil {
		return err
	}
	if !written {
		// Most writes change an existing task: try a plain UPDATE first,
		// which costs SQLite much less than an upsert.
		res, err := t.exec(`UPDATE tasks SET company = ?, status = ?, project = ?, last_update_ms = ?, doc = ? WHERE id = ?`,
			task.Company, task.Status, task.Project, lu, doc, task.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			_, err = t.exec(`INSERT INTO tasks (id, company, status, project, last_update_ms, doc) VALUES (?, ?, ?, ?, ?, ?)`,
				task.ID, task.Company, task.Status, task.Project, lu, doc)
			if err != nil {
				return err
			}
		}
	}
	t.remember(task.ID, keysOf(task))
	// Written by updateKnownTask, the row had the status remembered; the
	// listing row, written with it, has it too.
	return t.putTaskList(task, written && prev.status == task.Status)
}

// updateKnownTask writes a task this transaction has read, setting only
// the indexed columns that change. SQLite rewrites the entry of every
// index over a column an UPDATE sets, changed or not: the company and
// project index would cost a page on every write, the status index one
// or two. It runs only while the row's columns are still those
// remembered; otherwise (or for a task never read) it writes nothing and
// says so, and the full UPDATE follows.
func (t *sqlTx) updateKnownTask(task *api.Task, doc string, lu int64) (bool, error) {
	k, ok := t.known[task.ID]
	if !ok || k.company != task.Company || k.project != task.Project {
		return false, nil
	}
	q := `UPDATE tasks SET last_update_ms = ?, doc = ? WHERE id = ? AND company = ? AND project = ? AND status = ?`
	args := []any{lu, doc, task.ID, k.company, k.project, k.status}
	if k.status != task.Status {
		q = `UPDATE tasks SET status = ?, last_update_ms = ?, doc = ? WHERE id = ? AND company = ? AND project = ? AND status = ?`
		args = append([]any{task.Status}, args...)
	}
	res, err := t.exec(q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// putTaskPostgres writes an existing task and updates its listing row in
// place in one statement (one round trip); a new task, or a listing row
// that must be rewritten (see taskListUpdate), takes the full writes.
// It sets every indexed column: PostgreSQL compares their values itself
// and leaves the indexes of unchanged ones alone.
func (t *sqlTx) putTaskPostgres(task *api.Task, doc string, lu int64) error {
	var tasks, rows int
	err := t.queryRow(`WITH u AS (UPDATE tasks SET company = ?, status = ?, project = ?, last_update_ms = ?, doc = ?
		WHERE id = ? RETURNING id),
		l AS (UPDATE task_list SET status = ?, user_id = ?, last_update_us = ?
		WHERE id = (SELECT id FROM u) AND `+listingGuards["postgres"]+` RETURNING id)
		SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM l)`,
		append([]any{task.Company, task.Status, task.Project, lu, doc, task.ID,
			task.Status, task.User, micros(task.LastUpdate)}, listingGuardArgs(task)...)...,
	).Scan(&tasks, &rows)
	switch {
	case err != nil:
		return err
	case tasks == 0:
		if _, err := t.exec(`INSERT INTO tasks (id, company, status, project, last_update_ms, doc) VALUES (?, ?, ?, ?, ?, ?)`,
			task.ID, task.Company, task.Status, task.Project, lu, doc); err != nil {
			return err
		}
		return t.putTaskList(task, false)
	case rows == 0:
		return t.rewriteTaskList(task)
	}
	return nil
}

func (t *sqlTx) DeleteTask(id string) error {
	delete(t.known, id)
	if _, err := t.exec(`DELETE FROM tasks WHERE id = ?`, id); err != nil {
		return err
	}
	if err := t.deleteSearch(id); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM task_list WHERE id = ?`, id)
	return err
}
