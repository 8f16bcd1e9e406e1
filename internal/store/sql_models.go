package store

import (
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

func (t *sqlTx) Model(id string) (*api.Model, error) {
	m := new(api.Model)
	return m, t.getDoc(`SELECT doc FROM models WHERE id = ?`+t.lockClause(), m, id)
}

func (t *sqlTx) PutModel(m *api.Model) error {
	doc, err := marshal(m)
	if err != nil {
		return err
	}
	// As for tasks, most writes change an existing model.
	res, err := t.exec(`UPDATE models SET company = ?, project = ?, task = ?, doc = ? WHERE id = ?`,
		m.Company, m.Project, m.Task, doc, m.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	_, err = t.exec(`INSERT INTO models (id, company, project, task, doc) VALUES (?, ?, ?, ?, ?)`,
		m.ID, m.Company, m.Project, m.Task, doc)
	return err
}

func (t *sqlTx) DeleteModel(id string) error {
	_, err := t.exec(`DELETE FROM models WHERE id = ?`, id)
	return err
}

func (t *sqlTx) Models(q ModelQuery) ([]*api.Model, error) {
	where := []string{companyCond(q.IDs != nil)}
	args := []any{q.Company}
	for _, f := range []struct {
		col  string
		vals []string
	}{{"id", q.IDs}, {"task", q.Tasks}, {"project", q.Projects}} {
		if f.vals == nil {
			continue
		}
		if len(f.vals) == 0 {
			return nil, nil
		}
		cond, arg, err := t.inList(f.col, f.vals)
		if err != nil {
			return nil, err
		}
		where = append(where, cond)
		args = append(args, arg)
	}
	return listDocs[api.Model](t, `SELECT doc FROM models WHERE `+strings.Join(where, " AND ")+` ORDER BY id`, args...)
}

func (t *sqlTx) WorkerProperties(company, worker string, now time.Time) ([]WorkerProperty, error) {
	rows, err := t.query(`SELECT key, value, expires_ms FROM worker_properties WHERE company = ? AND worker_id = ?
		AND (expires_ms = 0 OR expires_ms > ?) ORDER BY key`, company, worker, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WorkerProperty
	for rows.Next() {
		var p WorkerProperty
		var exp int64
		if err := rows.Scan(&p.Key, &p.Value, &exp); err != nil {
			return nil, err
		}
		if exp != 0 {
			p.Expires = time.UnixMilli(exp).UTC()
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t *sqlTx) PutWorkerProperty(company, worker string, p WorkerProperty) error {
	var exp int64
	if !p.Expires.IsZero() {
		exp = max(p.Expires.UnixMilli(), 1)
	}
	_, err := t.exec(`INSERT INTO worker_properties (company, worker_id, key, value, expires_ms) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (company, worker_id, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms`,
		company, worker, p.Key, p.Value, exp)
	return err
}
