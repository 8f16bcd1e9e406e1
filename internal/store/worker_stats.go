package store

import (
	"encoding/json"
	"time"
)

func (t *sqlTx) AddWorkerStats(company, worker string, at time.Time, stats json.RawMessage, keepFrom time.Time) error {
	if _, err := t.exec(`DELETE FROM worker_stats WHERE company = ? AND worker_id = ? AND ts_ms < ?`,
		company, worker, keepFrom.UnixMilli()); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO worker_stats (company, worker_id, ts_ms, doc) VALUES (?, ?, ?, ?)`,
		company, worker, at.UnixMilli(), string(stats))
	return err
}

func (t *sqlTx) WorkerStats(company string, workers []string, from, to time.Time) ([]WorkerStat, error) {
	q := `SELECT worker_id, ts_ms, doc FROM worker_stats WHERE company = ? AND ts_ms >= ? AND ts_ms <= ?`
	args := []any{company, from.UnixMilli(), to.UnixMilli()}
	if workers != nil {
		if len(workers) == 0 {
			return nil, nil
		}
		cond, arg, err := t.inList("worker_id", workers)
		if err != nil {
			return nil, err
		}
		q += ` AND ` + cond
		args = append(args, arg)
	}
	rows, err := t.query(q+` ORDER BY ts_ms, worker_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WorkerStat
	for rows.Next() {
		var s WorkerStat
		var ms int64
		var doc string
		if err := rows.Scan(&s.Worker, &ms, &doc); err != nil {
			return nil, err
		}
		s.Time, s.Stats = time.UnixMilli(ms).UTC(), json.RawMessage(doc)
		out = append(out, s)
	}
	return out, rows.Err()
}
