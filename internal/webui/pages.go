package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The dashboard, queues, workers and projects pages.

// queueInfo is a queue with its length, oldest wait and throughput.
type queueInfo struct {
	ID, Name   string
	Length     int
	OldestWait string
	// Started is how many tasks of the queue started in the last hour
	// (Capped: at least that many).
	Started int
	Capped  bool
	Entries []entryInfo
}

type entryInfo struct {
	Task, Name, Status, Added string
}

// throughputPages bounds the tasks read to count an hour's starts.
const throughputPages = 10

// queueInfos reads the queues; entries: how many entries of each to name.
func (u *UI) queueInfos(ctx context.Context, s *session, entries int) ([]queueInfo, error) {
	var resp struct {
		Queues []map[string]any `json:"queues"`
	}
	err := s.call(ctx, "queues.get_all", map[string]any{"order_by": []string{"name"}, "max_task_entries": entries}, &resp)
	if err != nil {
		return nil, err
	}
	var out []queueInfo
	var ids []string
	for _, q := range resp.Queues {
		d := taskDoc(q)
		qi := queueInfo{ID: d.str("id"), Name: d.str("name")}
		var num struct {
			Num int `json:"num"`
		}
		if err := s.call(ctx, "queues.get_num_entries", map[string]any{"queue": qi.ID}, &num); err != nil {
			return nil, err
		}
		qi.Length = num.Num
		items, _ := q["entries"].([]any)
		for i, it := range items {
			e := taskDoc(asMap(it))
			if i == 0 {
				if t, ok := parseTime(e.str("added")); ok {
					qi.OldestWait = duration(time.Since(t).Seconds())
				}
			}
			qi.Entries = append(qi.Entries, entryInfo{Task: e.str("task"), Added: e.str("added")})
			ids = append(ids, e.str("task"))
		}
		out = append(out, qi)
	}
	if entries > 1 && len(ids) > 0 {
		var tasks struct {
			Tasks []taskDoc `json:"tasks"`
		}
		if err := s.call(ctx, "tasks.get_all", map[string]any{"id": ids, "only_fields": []string{"id", "name", "status"}}, &tasks); err != nil {
			return nil, err
		}
		byID := map[string]taskDoc{}
		for _, t := range tasks.Tasks {
			byID[t.str("id")] = t
		}
		for i := range out {
			for j, e := range out[i].Entries {
				out[i].Entries[j].Name, out[i].Entries[j].Status = byID[e.Task].str("name"), byID[e.Task].str("status")
			}
		}
	}
	// Throughput: the tasks of each queue that started in the last hour.
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05")
	started, capped := map[string]int{}, false
	for page := 0; page < throughputPages; page++ {
		var tasks struct {
			Tasks []taskDoc `json:"tasks"`
		}
		err := s.call(ctx, "tasks.get_all", map[string]any{"started": ">=" + since, "search_hidden": true,
			"only_fields": []string{"execution.queue"}, "order_by": []string{"-started"}, "page": page, "page_size": 500}, &tasks)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks.Tasks {
			started[t.str("execution.queue")]++
		}
		if len(tasks.Tasks) < 500 {
			break
		}
		capped = page == throughputPages-1
	}
	for i := range out {
		out[i].Started, out[i].Capped = started[out[i].ID], capped
	}
	return out, nil
}

// workerInfo is a worker with its task and latest utilisation.
type workerInfo struct {
	ID, IP, Task, TaskID, LastSeen string
	Queues                         []string
	Running                        string
	Stats                          map[string]*statSeries
}

func (u *UI) workerInfos(ctx context.Context, s *session) ([]workerInfo, error) {
	var resp struct {
		Workers []map[string]any `json:"workers"`
	}
	if err := s.call(ctx, "workers.get_all", map[string]any{}, &resp); err != nil {
		return nil, err
	}
	var out []workerInfo
	var ids []string
	for _, w := range resp.Workers {
		d := taskDoc(w)
		wi := workerInfo{ID: d.str("id"), IP: d.str("ip"), Task: d.str("task.name"), TaskID: d.str("task.id"),
			LastSeen: d.str("last_activity_time")}
		if ms, ok := asMap(w["task"])["running_time"].(float64); ok {
			wi.Running = duration(ms / 1000)
		}
		qs, _ := w["queues"].([]any)
		for _, q := range qs {
			wi.Queues = append(wi.Queues, taskDoc(asMap(q)).str("name"))
		}
		out = append(out, wi)
		ids = append(ids, wi.ID)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(ids) > 0 {
		stats := u.workerStats(ctx, s, ids)
		for i := range out {
			out[i].Stats = stats[out[i].ID]
		}
	}
	return out, nil
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	queues, err := u.queueInfos(ctx, s, 1)
	if err != nil {
		u.failAPI(w, r, s, "The queues", err)
		return
	}
	workers, err := u.workerInfos(ctx, s)
	if err != nil {
		u.failAPI(w, r, s, "The workers", err)
		return
	}
	var recent struct {
		Tasks []taskDoc `json:"tasks"`
	}
	err = s.call(ctx, "tasks.get_all", map[string]any{"order_by": []string{"-last_update"}, "page_size": 10,
		"only_fields": taskListFields, "system_tags": []string{"-archived"}}, &recent)
	if err != nil {
		u.failAPI(w, r, s, "The recent tasks", err)
		return
	}
	projects, _, _ := u.projectNames(ctx, s)
	users, _ := u.userNames(ctx, s)
	qn := names{}
	for _, q := range queues {
		qn[q.ID] = q.Name
	}
	var rows []taskRow
	for _, t := range recent.Tasks {
		rows = append(rows, rowOf(t, projects, users, qn))
	}
	u.render(w, r, s, http.StatusOK, "dashboard", "Dashboard", map[string]any{"Queues": queues, "Workers": workers, "Recent": rows})
}

func (u *UI) queuesPage(w http.ResponseWriter, r *http.Request, s *session) {
	queues, err := u.queueInfos(r.Context(), s, 200)
	if err != nil {
		u.failAPI(w, r, s, "The queues", err)
		return
	}
	u.render(w, r, s, http.StatusOK, "queues", "Queues", map[string]any{"Queues": queues})
}

func (u *UI) workersPage(w http.ResponseWriter, r *http.Request, s *session) {
	workers, err := u.workerInfos(r.Context(), s)
	if err != nil {
		u.failAPI(w, r, s, "The workers", err)
		return
	}
	u.render(w, r, s, http.StatusOK, "workers", "Workers", map[string]any{"Workers": workers})
}

func (u *UI) projectsPage(w http.ResponseWriter, r *http.Request, s *session) {
	_, list, err := u.projectNames(r.Context(), s)
	if err != nil {
		u.failAPI(w, r, s, "The projects", err)
		return
	}
	u.render(w, r, s, http.StatusOK, "projects", "Projects", map[string]any{"Projects": list})
}

// queueActions reorders a queue, moves a task to another queue, or takes
// it out (back to its status before the enqueue).
func (u *UI) queueActions(w http.ResponseWriter, r *http.Request, s *session) {
	var req struct {
		Action string `json:"action"`
		Queue  string `json:"queue"`
		Task   string `json:"task"`
		To     string `json:"to"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		u.fail(w, r, s, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	var endpoint string
	body := map[string]any{"queue": req.Queue, "task": req.Task}
	switch req.Action {
	case "up":
		endpoint = "queues.move_task_forward"
	case "down":
		endpoint = "queues.move_task_backward"
	case "top":
		endpoint = "queues.move_task_to_front"
	case "bottom":
		endpoint = "queues.move_task_to_back"
	case "remove":
		endpoint, body = "tasks.dequeue", map[string]any{"task": req.Task}
	case "move":
		if req.To == "" || req.To == req.Queue {
			u.fail(w, r, s, http.StatusBadRequest, "choose another queue")
			return
		}
		endpoint, body = "tasks.enqueue", map[string]any{"task": req.Task, "queue": req.To}
	default:
		u.fail(w, r, s, http.StatusBadRequest, fmt.Sprintf("unknown action %q", req.Action))
		return
	}
	var out map[string]any
	if err := s.call(r.Context(), endpoint, body, &out); err != nil {
		u.failAPI(w, r, s, "The queue entry", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// comparePage shows 2 to 10 tasks side by side: hyper-parameters that
// differ first, and their scalars overlaid (drawn in the browser).
func (u *UI) comparePage(w http.ResponseWriter, r *http.Request, s *session) {
	var ids []string
	for _, v := range r.URL.Query()["ids"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" && !contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) < 2 || len(ids) > 10 {
		u.fail(w, r, s, http.StatusBadRequest, "Compare takes 2 to 10 task ids: /compare?ids=a,b")
		return
	}
	ctx := r.Context()
	var tasks struct {
		Tasks []taskDoc `json:"tasks"`
	}
	if err := s.call(ctx, "tasks.get_all", map[string]any{"id": ids, "only_fields": taskListFields}, &tasks); err != nil {
		u.failAPI(w, r, s, "The tasks", err)
		return
	}
	byID := map[string]taskDoc{}
	for _, t := range tasks.Tasks {
		byID[t.str("id")] = t
	}
	for _, id := range ids {
		if byID[id] == nil {
			u.fail(w, r, s, http.StatusNotFound, "Task "+id+" was not found.")
			return
		}
	}
	var params struct {
		Params []struct {
			Task        string           `json:"task"`
			Hyperparams []map[string]any `json:"hyperparams"`
		} `json:"params"`
	}
	if err := s.call(ctx, "tasks.get_hyper_params", map[string]any{"tasks": ids}, &params); err != nil {
		u.failAPI(w, r, s, "The hyper-parameters", err)
		return
	}
	values := map[string]map[string]string{} // "section/name" -> task -> value
	for _, p := range params.Params {
		for _, h := range p.Hyperparams {
			d := taskDoc(h)
			k := d.str("section") + "/" + d.str("name")
			if values[k] == nil {
				values[k] = map[string]string{}
			}
			values[k][p.Task] = d.str("value")
		}
	}
	type paramRow struct {
		Name   string
		Values []string
		Differ bool
	}
	var rows []paramRow
	for k, byTask := range values {
		row := paramRow{Name: k}
		for _, id := range ids {
			v, ok := byTask[id]
			if !ok {
				v = "—"
			}
			row.Values = append(row.Values, v)
			row.Differ = row.Differ || v != row.Values[0]
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Differ != rows[j].Differ {
			return rows[i].Differ
		}
		return rows[i].Name < rows[j].Name
	})
	var cols []taskRow
	var series []map[string]string
	for _, id := range ids {
		row := rowOf(byID[id], nil, nil, nil)
		cols = append(cols, row)
		series = append(series, map[string]string{"id": id, "name": row.Name})
	}
	u.render(w, r, s, http.StatusOK, "compare", "Compare", map[string]any{"Tasks": cols, "Params": rows, "Series": series})
}
