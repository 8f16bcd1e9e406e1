package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// The tasks table: filters, sort, pages, find by id, bulk actions.

// taskDoc is a task as tasks.get_all / get_by_id return it.
type taskDoc map[string]any

func (t taskDoc) str(path string) string {
	var cur any = map[string]any(t)
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

func (t taskDoc) list(key string) []string {
	items, _ := t[key].([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// taskRow is one line of the tasks table.
type taskRow struct {
	ID, Name, Status, Message, Type, User, Project, ProjectID, Queue string
	Created, Started, Updated                                        string
	Tags                                                             []string
	Archived                                                         bool
	Iteration                                                        string
}

var taskListFields = []string{"id", "name", "status", "status_message", "type", "user", "project", "created", "started",
	"last_update", "tags", "system_tags", "execution.queue", "last_iteration"}

// names maps ids to names (projects, users, queues) for display.
type names map[string]string

func (n names) of(id string) string {
	if v, ok := n[id]; ok && v != "" {
		return v
	}
	return id
}

func (u *UI) projectNames(ctx context.Context, s *session) (names, []map[string]any, error) {
	var resp struct {
		Projects []map[string]any `json:"projects"`
	}
	err := s.call(ctx, "projects.get_all", map[string]any{"order_by": []string{"name"}, "only_fields": []string{"id", "name", "created", "description"}}, &resp)
	n := names{}
	for _, p := range resp.Projects {
		id, _ := p["id"].(string)
		n[id], _ = p["name"].(string)
	}
	return n, resp.Projects, err
}

func (u *UI) queueNames(ctx context.Context, s *session) (names, []map[string]any, error) {
	var resp struct {
		Queues []map[string]any `json:"queues"`
	}
	err := s.call(ctx, "queues.get_all", map[string]any{"order_by": []string{"name"}, "max_task_entries": 1}, &resp)
	n := names{}
	for _, q := range resp.Queues {
		id, _ := q["id"].(string)
		n[id], _ = q["name"].(string)
	}
	return n, resp.Queues, err
}

func (u *UI) userNames(ctx context.Context, s *session) (names, error) {
	var resp struct {
		Users []map[string]any `json:"users"`
	}
	err := s.call(ctx, "users.get_all", map[string]any{"only_fields": []string{"id", "name"}}, &resp)
	n := names{}
	for _, x := range resp.Users {
		id, _ := x["id"].(string)
		n[id], _ = x["name"].(string)
	}
	return n, err
}

func rowOf(t taskDoc, projects, users, queues names) taskRow {
	return taskRow{ID: t.str("id"), Name: t.str("name"), Status: t.str("status"), Message: t.str("status_message"),
		Type: t.str("type"), User: users.of(t.str("user")), Project: projects.of(t.str("project")), ProjectID: t.str("project"),
		Queue: queues.of(t.str("execution.queue")), Created: t.str("created"), Started: t.str("started"),
		Updated: t.str("last_update"), Tags: t.list("tags"), Archived: contains(t.list("system_tags"), "archived"),
		Iteration: t.str("last_iteration")}
}

var (
	taskIDExp   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-fA-F]{32}$`) })
	allStatuses = []string{"created", "queued", "in_progress", "stopped", "completed", "failed", "published", "closed"}
	sortFields  = []string{"created", "last_update", "started", "name", "status", "type"}
)

// taskFilter is the tasks page's query string.
type taskFilter struct {
	Project, Tag, User, Text, Sort string
	Desc, Archived                 bool
	Statuses                       []string
	Page, Size                     int
}

func parseTaskFilter(q url.Values) taskFilter {
	f := taskFilter{Project: q.Get("project"), Tag: q.Get("tag"), User: q.Get("user"), Text: strings.TrimSpace(q.Get("q")),
		Sort: q.Get("sort"), Desc: q.Get("dir") != "asc", Archived: q.Get("archived") == "1", Size: 50}
	if !contains(sortFields, f.Sort) {
		f.Sort = "created"
	}
	for _, st := range q["status"] {
		if contains(allStatuses, st) {
			f.Statuses = append(f.Statuses, st)
		}
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 && n < 1_000_000 {
		f.Page = n
	}
	if n, err := strconv.Atoi(q.Get("size")); err == nil && n > 0 {
		f.Size = min(n, 500)
	}
	return f
}

// request is the tasks.get_all body for the filter's page.
func (f taskFilter) request() map[string]any {
	body := map[string]any{"only_fields": taskListFields, "page": f.Page, "page_size": f.Size}
	order := f.Sort
	if f.Desc {
		order = "-" + order
	}
	body["order_by"] = []string{order}
	if f.Project != "" {
		body["project"] = []string{f.Project}
	}
	if f.User != "" {
		body["user"] = []string{f.User}
	}
	if f.Tag != "" {
		body["tags"] = []string{f.Tag}
	}
	if len(f.Statuses) > 0 {
		body["status"] = f.Statuses
	}
	if f.Text != "" {
		body["search_text"] = f.Text
	}
	if f.Archived {
		body["system_tags"] = []string{"archived"}
	} else {
		body["system_tags"] = []string{"-archived"}
	}
	return body
}

// query is the filter's query string with some values changed.
func (f taskFilter) query(changes ...string) string {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("project", f.Project)
	set("tag", f.Tag)
	set("user", f.User)
	set("q", f.Text)
	if f.Sort != "created" {
		v.Set("sort", f.Sort)
	}
	if !f.Desc {
		v.Set("dir", "asc")
	}
	if f.Archived {
		v.Set("archived", "1")
	}
	for _, st := range f.Statuses {
		v.Add("status", st)
	}
	if f.Page > 0 {
		v.Set("page", strconv.Itoa(f.Page))
	}
	if f.Size != 50 {
		v.Set("size", strconv.Itoa(f.Size))
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			v.Del(changes[i])
		} else {
			v.Set(changes[i], changes[i+1])
		}
	}
	return v.Encode()
}

func (u *UI) tasksPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	if id := strings.TrimSpace(q.Get("id")); id != "" {
		// Find by id: a full id opens the task (or its 404 page).
		if !taskIDExp().MatchString(id) {
			u.fail(w, r, s, http.StatusNotFound, fmt.Sprintf("%q is not a task id (32 hexadecimal characters).", id))
			return
		}
		http.Redirect(w, r, u.path("/tasks/"+strings.ToLower(id)), http.StatusSeeOther)
		return
	}
	f := parseTaskFilter(q)
	var resp struct {
		Tasks []taskDoc `json:"tasks"`
	}
	if err := s.call(ctx, "tasks.get_all", f.request(), &resp); err != nil {
		u.failAPI(w, r, s, "The task list", err)
		return
	}
	projects, projectList, err := u.projectNames(ctx, s)
	if err != nil {
		u.failAPI(w, r, s, "The projects", err)
		return
	}
	users, _ := u.userNames(ctx, s)
	queues, queueList, _ := u.queueNames(ctx, s)
	// A full page may have a next one (which may then be empty: asking
	// would cost a second query, as long as this one on a filter that
	// scans).
	more := len(resp.Tasks) == f.Size
	rows := make([]taskRow, len(resp.Tasks))
	for i, t := range resp.Tasks {
		rows[i] = rowOf(t, projects, users, queues)
	}
	userList := make([]map[string]string, 0, len(users))
	for id, name := range users {
		userList = append(userList, map[string]string{"id": id, "name": name})
	}
	sortByName(userList)
	data := map[string]any{"Rows": rows, "F": f, "More": more, "Projects": projectList, "Users": userList,
		"Queues": queueList, "Statuses": allStatuses, "SortFields": sortFields,
		"Prev":  template.URL(u.path("/tasks?" + f.query("page", strconv.Itoa(f.Page-1)))),
		"Next":  template.URL(u.path("/tasks?" + f.query("page", strconv.Itoa(f.Page+1)))),
		"First": f.Page*f.Size + 1, "Last": f.Page*f.Size + len(rows)}
	u.render(w, r, s, http.StatusOK, "tasks", "Tasks", data)
}

func sortByName(list []map[string]string) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && strings.ToLower(list[j]["name"]) < strings.ToLower(list[j-1]["name"]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

// actionRequest is a bulk action on tasks (from the tasks table or a task
// page).
type actionRequest struct {
	Action string   `json:"action"`
	IDs    []string `json:"ids"`
	Queue  string   `json:"queue"`
}

// taskActions performs a bulk action, one API call per task, and reports
// each failure with the API's message.
func (u *UI) taskActions(w http.ResponseWriter, r *http.Request, s *session) {
	var req actionRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		u.fail(w, r, s, http.StatusBadRequest, "bad action request: "+err.Error())
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > 500 {
		u.fail(w, r, s, http.StatusBadRequest, "select between 1 and 500 tasks")
		return
	}
	ctx := r.Context()
	type failure struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	var failures []failure
	var firstErr error
	done := 0
	result := map[string]any{}
	for _, id := range req.IDs {
		var err error
		switch req.Action {
		case "abort":
			err = s.call(ctx, "tasks.stop", map[string]any{"task": id}, nil)
		case "enqueue":
			body := map[string]any{"task": id}
			if req.Queue != "" {
				body["queue"] = req.Queue
			}
			err = s.call(ctx, "tasks.enqueue", body, nil)
		case "dequeue":
			err = s.call(ctx, "tasks.dequeue", map[string]any{"task": id}, nil)
		case "reset":
			err = s.call(ctx, "tasks.reset", map[string]any{"task": id}, nil)
		case "archive":
			err = s.call(ctx, "tasks.archive", map[string]any{"tasks": []string{id}}, nil)
		case "delete":
			err = s.call(ctx, "tasks.delete", map[string]any{"task": id}, nil)
		case "clone":
			var resp struct {
				ID string `json:"id"`
			}
			if err = s.call(ctx, "tasks.clone", map[string]any{"task": id}, &resp); err == nil {
				result["location"] = u.path("/tasks/" + resp.ID)
			}
		default:
			u.fail(w, r, s, http.StatusBadRequest, fmt.Sprintf("unknown action %q", req.Action))
			return
		}
		if err != nil {
			failures = append(failures, failure{ID: id, Error: message(err)})
			if firstErr == nil {
				firstErr = err
			}
		} else {
			done++
		}
	}
	result["done"], result["failed"] = done, failures
	status := http.StatusOK
	if done == 0 {
		status = http.StatusConflict
		if ae, ok := asAPIError(firstErr); ok {
			status = ae.Code
		}
	}
	writeJSON(w, status, result)
}
