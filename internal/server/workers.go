package server

import (
	"errors"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func workerKey(company, user, id string) string { return "worker_" + company + "_" + user + "_" + id }

func workersRegister(s *Server, c *call) (any, error) {
	var req api.WorkerRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Worker == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "worker")
	}
	timeout := int64(s.opts.WorkerTimeout / time.Second)
	if req.Timeout != nil {
		if *req.Timeout <= 0 {
			return nil, api.ErrWorkerRegistration.New("invalid timeout", "timeout", *req.Timeout)
		}
		timeout = *req.Timeout
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		queues := []string{}
		if req.Queues != nil {
			queues = *req.Queues
		}
		if err := checkQueues(tx, c, queues); err != nil {
			return err
		}
		now := s.now()
		w := &api.Worker{Key: workerKey(c.ident.Company, c.ident.User, req.Worker), ID: req.Worker,
			User: api.IDName{ID: c.ident.User, Name: c.ident.UserName}, Company: api.IDName{ID: c.ident.Company, Name: c.ident.CompanyName},
			IP: c.realIP, RegisterTime: &now, RegisterTimeout: timeout, LastActivityTime: &now,
			Queues: queues, Tags: orEmpty(req.Tags), SystemTags: orEmpty(req.SystemTags)}
		return tx.PutWorker(w, now.Add(seconds(timeout)))
	})
	return nil, err
}

// seconds converts a client's count of seconds, saturating instead of
// overflowing (a huge register timeout used to wrap to a negative duration
// and expire the worker at once).
func seconds(n int64) time.Duration {
	if n > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

func orEmpty(p *[]string) []string {
	if p == nil || *p == nil {
		return []string{}
	}
	return *p
}

// checkQueues fails with invalid_queue_id naming the unknown queue ids.
func checkQueues(tx store.Tx, c *call, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	queues, err := tx.Queues(c.ident.Company)
	if err != nil {
		return err
	}
	var bad []string
	for _, id := range ids {
		if !slices.ContainsFunc(queues, func(q *api.Queue) bool { return q.ID == id }) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		return api.ErrInvalidQueueID.New("", "ids", bad)
	}
	return nil
}

func workersUnregister(s *Server, c *call) (any, error) {
	var req api.WorkerRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Worker == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "worker")
	}
	return nil, s.store.Update(c.ctx, func(tx store.Tx) error {
		return tx.DeleteWorker(c.ident.Company, c.ident.User, req.Worker)
	})
}

func workersStatusReport(s *Server, c *call) (any, error) {
	var req api.WorkerRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Worker == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "worker")
	}
	if req.Timestamp == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "timestamp")
	}
	var taskErr error
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		taskErr = nil
		now := s.now()
		w, err := tx.Worker(c.ident.Company, c.ident.User, req.Worker)
		if errors.Is(err, store.ErrNotFound) {
			w = &api.Worker{Key: workerKey(c.ident.Company, c.ident.User, req.Worker), ID: req.Worker,
				User: api.IDName{ID: c.ident.User, Name: c.ident.UserName}, Company: api.IDName{ID: c.ident.Company, Name: c.ident.CompanyName},
				RegisterTime: &now, RegisterTimeout: int64(s.opts.WorkerTimeout / time.Second), Queues: []string{}, Tags: []string{}, SystemTags: []string{}}
		} else if err != nil {
			return err
		}
		w.IP, w.LastActivityTime, w.LastReportTime = c.realIP, &now, &now
		if req.Tags != nil {
			w.Tags = orEmpty(req.Tags)
		}
		if req.SystemTags != nil {
			w.SystemTags = orEmpty(req.SystemTags)
		}
		if req.Queues != nil {
			w.Queues = orEmpty(req.Queues)
		}
		w.Queue = req.Queue
		if req.MachineStats != nil && *req.MachineStats != nil {
			w.MachineStats = *req.MachineStats
		}
		w.Task, w.Project = nil, nil
		if req.Task != "" {
			t, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
			switch {
			case api.ErrInvalidTaskID.Is(err):
				taskErr = err // the entry is still saved
			case err != nil:
				return err
			default:
				t.LastWorker, t.LastWorkerReport, t.LastUpdate, t.LastChange = req.Worker, &now, &now, &now
				if t.Status == api.StatusInProgress {
					s.refreshDuration(t, now)
				}
				if err := tx.PutTask(t); err != nil {
					return err
				}
				w.Task = &api.IDName{ID: t.ID, Name: t.Name}
				if t.Project != "" {
					if p, err := tx.Project(t.Project); err == nil {
						w.Project = &api.IDName{ID: p.ID, Name: p.Name}
					}
				}
			}
		}
		if req.MachineStats != nil {
			if err := recordWorkerStats(tx, c.ident.Company, req.Worker, now.Time, *req.MachineStats); err != nil {
				return err
			}
		}
		return tx.PutWorker(w, now.Add(seconds(w.RegisterTimeout)))
	})
	if err != nil {
		return nil, err
	}
	return nil, taskErr
}

// globToRegexp turns a worker_pattern (* and ?) into an anchored regexp.
func globToRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func workersGetAll(s *Server, c *call) (any, error) {
	var req api.WorkersGetAllRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	lastSeen := int64(3600)
	if req.LastSeen != nil {
		lastSeen = *req.LastSeen
	}
	var pattern *regexp.Regexp
	if req.WorkerPattern != "" {
		var err error
		if pattern, err = globToRegexp(req.WorkerPattern); err != nil {
			return nil, api.ErrInvalidRegex.New("", "worker_pattern", req.WorkerPattern)
		}
	}
	now := s.opts.Now()
	out := []map[string]any{}
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		workers, err := tx.Workers(c.ident.Company, now)
		if err != nil {
			return err
		}
		queueNames := map[string]string{}
		if queues, err := tx.Queues(c.ident.Company); err == nil {
			for _, q := range queues {
				queueNames[q.ID] = q.Name
			}
		}
		tags, systemTags := compileTerms(toAny(req.Tags)), compileTerms(toAny(req.SystemTags))
		for _, w := range workers {
			if lastSeen > 0 && w.LastActivityTime != nil && now.Sub(w.LastActivityTime.Time) > seconds(lastSeen) {
				continue
			}
			if pattern != nil && !pattern.MatchString(w.ID) {
				continue
			}
			if len(req.Tags) > 0 && !tags.match(w.Tags) || len(req.SystemTags) > 0 && !systemTags.match(w.SystemTags) {
				continue
			}
			out = append(out, workerView(tx, w, queueNames))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"workers": out}, nil
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

func workerView(tx store.Tx, w *api.Worker, queueNames map[string]string) map[string]any {
	doc := toDoc(w)
	delete(doc, "machine_stats")
	if w.Task != nil {
		task := map[string]any{"id": w.Task.ID, "name": w.Task.Name}
		if t, err := tx.Task(w.Task.ID); err == nil {
			if t.ActiveDuration != nil {
				task["running_time"] = *t.ActiveDuration * 1000
			}
			task["last_iteration"] = t.LastIteration
		}
		doc["task"] = task
	}
	if w.Queue != "" {
		doc["queue"] = map[string]any{"id": w.Queue, "name": queueNames[w.Queue]}
	}
	queues := []map[string]any{}
	for _, id := range w.Queues {
		q := map[string]any{"id": id, "name": queueNames[id]}
		if n, err := tx.CountEntries(id); err == nil {
			q["num_tasks"] = n
		}
		queues = append(queues, q)
	}
	doc["queues"] = queues
	return doc
}
