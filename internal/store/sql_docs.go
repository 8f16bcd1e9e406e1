package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

func (t *sqlTx) Meta(key string) (string, error) {
	var v string
	err := t.queryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return v, err
}

func (t *sqlTx) SetMeta(key, value string) error {
	_, err := t.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// getDoc reads one JSON document into v.
func (t *sqlTx) getDoc(q string, v any, args ...any) error {
	var doc string
	err := t.queryRow(q, args...).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("decoding stored document: %w", err)
	}
	return nil
}

// listDocs reads JSON documents, calling add for each.
func listDocs[T any](t *sqlTx, q string, args ...any) ([]*T, error) {
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal([]byte(doc), v); err != nil {
			return nil, fmt.Errorf("decoding stored document: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding document: %w", err)
	}
	return string(b), nil
}

func (t *sqlTx) User(id string) (*api.User, error) {
	u := new(api.User)
	return u, t.getDoc(`SELECT doc FROM users WHERE id = ?`, u, id)
}

func (t *sqlTx) Users(company string) ([]*api.User, error) {
	return listDocs[api.User](t, `SELECT doc FROM users WHERE company = ? ORDER BY id`, company)
}

func (t *sqlTx) PutUser(u *api.User) error {
	doc, err := marshal(u)
	if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO users (id, company, doc) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET company = excluded.company, doc = excluded.doc`, u.ID, u.Company, doc)
	return err
}

func (t *sqlTx) Credential(accessKey string) (string, string, error) {
	var user, hash string
	err := t.queryRow(`SELECT user_id, secret_hash FROM credentials WHERE access_key = ?`, accessKey).Scan(&user, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return user, hash, err
}

func (t *sqlTx) PutCredential(accessKey, secretHash, userID string) error {
	_, err := t.exec(`INSERT INTO credentials (access_key, secret_hash, user_id) VALUES (?, ?, ?)
		ON CONFLICT (access_key) DO UPDATE SET secret_hash = excluded.secret_hash, user_id = excluded.user_id`,
		accessKey, secretHash, userID)
	return err
}

func (t *sqlTx) RevokeSession(sessionID string, expires time.Time) error {
	_, err := t.exec(`INSERT INTO revoked_sessions (session_id, expires_ms) VALUES (?, ?)
		ON CONFLICT (session_id) DO UPDATE SET expires_ms = excluded.expires_ms`, sessionID, expires.UnixMilli())
	return err
}

func (t *sqlTx) RevokedSessions(now time.Time) (map[string]time.Time, error) {
	rows, err := t.query(`SELECT session_id, expires_ms FROM revoked_sessions WHERE expires_ms > ?`, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var exp int64
		if err := rows.Scan(&id, &exp); err != nil {
			return nil, err
		}
		out[id] = time.UnixMilli(exp).UTC()
	}
	return out, rows.Err()
}

func (t *sqlTx) DeleteExpiredRevocations(now time.Time) (int, error) {
	res, err := t.exec(`DELETE FROM revoked_sessions WHERE expires_ms <= ?`, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *sqlTx) Tasks(q TaskQuery) ([]*api.Task, error) {
	// On SQLite the status index is the listing's (dropStatusIndex): the
	// ids of a status come from it, the rows by their primary key.
	viaListing := q.Statuses != nil && t.s.dialect == "sqlite"
	where := []string{companyCond(q.IDs != nil || (viaListing && q.Projects == nil))}
	args := []any{q.Company}
	for _, f := range []struct {
		col  string
		vals []string
	}{{"id", q.IDs}, {"status", q.Statuses}, {"project", q.Projects}} {
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
		if f.col == "status" && viaListing {
			// The listing's last update (microseconds, NULL for none) is
			// before the bound exactly when the task's (milliseconds, 0 for
			// none) is: only the rows of the tasks that pass are read.
			sub, subArgs := "company = ? AND "+cond, []any{q.Company, arg}
			if q.UpdatedBefore != nil {
				sub, subArgs = sub+" AND (last_update_us IS NULL OR last_update_us < ?)", append(subArgs, q.UpdatedBefore.UnixMilli()*1000)
			}
			where, args = append(where, "id IN (SELECT id FROM task_list WHERE "+sub+")"), append(args, subArgs...)
			continue
		}
		where = append(where, cond)
		args = append(args, arg)
	}
	if q.UpdatedBefore != nil {
		where = append(where, "last_update_ms < ?")
		args = append(args, q.UpdatedBefore.UnixMilli())
	}
	return listDocs[api.Task](t, `SELECT doc FROM tasks WHERE `+strings.Join(where, " AND ")+` ORDER BY id`, args...)
}

// companyCond is the company condition of a listing. With an id list (or
// the ids of a status) the company is written as an expression no index
// can serve: the planner otherwise scans every task of the company (index
// on company, a bloom filter for the ids) instead of looking the ids up by
// primary key.
func companyCond(byID bool) string {
	if byID {
		return "company || '' = ?"
	}
	return "company = ?"
}

func (t *sqlTx) Project(id string) (*api.Project, error) {
	p := new(api.Project)
	return p, t.getDoc(`SELECT doc FROM projects WHERE id = ?`+t.lockClause(), p, id)
}

func (t *sqlTx) Projects(company string) ([]*api.Project, error) {
	return listDocs[api.Project](t, `SELECT doc FROM projects WHERE company = ? ORDER BY name`, company)
}

func (t *sqlTx) InsertProject(p *api.Project) (bool, error) {
	doc, err := marshal(p)
	if err != nil {
		return false, err
	}
	res, err := t.exec(`INSERT INTO projects (id, company, name, doc) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.Company, p.Name, doc)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *sqlTx) PutProject(p *api.Project) error {
	doc, err := marshal(p)
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE projects SET name = ?, doc = ? WHERE id = ?`, p.Name, doc, p.ID)
	return err
}

func (t *sqlTx) DeleteProject(id string) error {
	_, err := t.exec(`DELETE FROM projects WHERE id = ?`, id)
	return err
}

func (t *sqlTx) Queue(id string) (*api.Queue, error) {
	q := new(api.Queue)
	return q, t.getDoc(`SELECT doc FROM queues WHERE id = ?`+t.lockClause(), q, id)
}

func (t *sqlTx) QueueCompany(id string) (string, error) {
	var company string
	err := t.queryRow(`SELECT company FROM queues WHERE id = ?`, id).Scan(&company)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return company, err
}

func (t *sqlTx) Queues(company string) ([]*api.Queue, error) {
	return listDocs[api.Queue](t, `SELECT doc FROM queues WHERE company = ? ORDER BY name`, company)
}

func (t *sqlTx) InsertQueue(q *api.Queue) (bool, error) {
	doc, err := marshal(queueDoc(q))
	if err != nil {
		return false, err
	}
	res, err := t.exec(`INSERT INTO queues (id, company, name, doc) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		q.ID, q.Company, q.Name, doc)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *sqlTx) PutQueue(q *api.Queue) error {
	doc, err := marshal(queueDoc(q))
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE queues SET name = ?, doc = ? WHERE id = ?`, q.Name, doc, q.ID)
	return err
}

// queueDoc strips the entries, which live in their own table.
func queueDoc(q *api.Queue) *api.Queue {
	c := *q
	c.Entries = nil
	return &c
}

func (t *sqlTx) DeleteQueue(id string) error {
	if _, err := t.exec(`DELETE FROM queue_entries WHERE queue_id = ?`, id); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM queues WHERE id = ?`, id)
	return err
}

func (t *sqlTx) Worker(company, user, id string) (*api.Worker, error) {
	w := new(api.Worker)
	return w, t.getDoc(`SELECT doc FROM workers WHERE company = ? AND user_id = ? AND worker_id = ?`, w, company, user, id)
}

func (t *sqlTx) PutWorker(w *api.Worker, expires time.Time) error {
	doc, err := marshal(w)
	if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO workers (company, user_id, worker_id, expires_ms, doc) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (company, user_id, worker_id) DO UPDATE SET expires_ms = excluded.expires_ms, doc = excluded.doc`,
		w.Company.ID, w.User.ID, w.ID, expires.UnixMilli(), doc)
	return err
}

func (t *sqlTx) DeleteWorker(company, user, id string) error {
	_, err := t.exec(`DELETE FROM workers WHERE company = ? AND user_id = ? AND worker_id = ?`, company, user, id)
	return err
}

func (t *sqlTx) Workers(company string, now time.Time) ([]*api.Worker, error) {
	return listDocs[api.Worker](t, `SELECT doc FROM workers WHERE company = ? AND expires_ms > ? ORDER BY worker_id, user_id`,
		company, now.UnixMilli())
}

func (t *sqlTx) DeleteExpiredWorkers(now time.Time) (int, error) {
	res, err := t.exec(`DELETE FROM workers WHERE expires_ms <= ?`, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
