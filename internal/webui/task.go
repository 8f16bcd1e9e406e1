package webui

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// A task's pages: overview, console, scalars, plots, debug samples,
// hyper-parameters, configuration, artifacts and models.

var taskTabs = []struct{ Path, Label string }{
	{"", "Overview"}, {"console", "Console"}, {"scalars", "Scalars"}, {"plots", "Plots"},
	{"debug-samples", "Debug samples"}, {"hyper-params", "Hyper-parameters"}, {"configuration", "Configuration"},
	{"artifacts", "Artifacts and models"},
}

// taskHeader is what every tab of a task shows above its content.
type taskHeader struct {
	Task     taskDoc
	ID       string
	Tab      string
	Tabs     []struct{ Path, Label string }
	Project  string
	Queue    string
	Queues   []map[string]any
	Running  bool
	Draft    bool
	Archived bool
}

// loadTask reads a task and the names its header shows; it answers the
// request itself (404 page, API error) when it returns false.
func (u *UI) loadTask(w http.ResponseWriter, r *http.Request, s *session, id, tab string) (*taskHeader, bool) {
	ctx := r.Context()
	var resp struct {
		Task taskDoc `json:"task"`
	}
	if err := s.call(ctx, "tasks.get_by_id", map[string]any{"task": id}, &resp); err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return nil, false
	}
	t := resp.Task
	h := &taskHeader{Task: t, ID: id, Tab: tab, Tabs: taskTabs, Running: t.str("status") == "in_progress",
		Draft: t.str("status") == "created", Archived: contains(t.list("system_tags"), "archived")}
	if p := t.str("project"); p != "" {
		var pr struct {
			Project map[string]any `json:"project"`
		}
		if s.call(ctx, "projects.get_by_id", map[string]any{"project": p}, &pr) == nil {
			h.Project, _ = pr.Project["name"].(string)
		}
	}
	queues, list, _ := u.queueNames(ctx, s)
	h.Queues, h.Queue = list, queues.of(t.str("execution.queue"))
	return h, true
}

// taskPage renders one tab of a task.
func (u *UI) taskPage(w http.ResponseWriter, r *http.Request, s *session, id, tab string) {
	known := false
	for _, t := range taskTabs {
		known = known || t.Path == tab
	}
	if !known {
		u.fail(w, r, s, http.StatusNotFound, "A task has no page "+tab+".")
		return
	}
	h, ok := u.loadTask(w, r, s, id, tab)
	if !ok {
		return
	}
	ctx := r.Context()
	data := map[string]any{"H": h}
	name := "task_" + strings.ReplaceAll(tab, "-", "")
	switch tab {
	case "":
		name = "task_overview"
		data["Script"] = h.Task["script"]
		data["Container"] = h.Task["container"]
		data["Duration"] = h.Task.str("active_duration")
	case "console":
		lines, err := u.logPage(ctx, s, id, "", logPageSize)
		if err != nil {
			u.failAPI(w, r, s, "The console of task "+id, err)
			return
		}
		data["Log"] = lines
	case "hyper-params":
		var resp struct {
			Params []struct {
				Hyperparams []map[string]any `json:"hyperparams"`
			} `json:"params"`
		}
		if err := s.call(ctx, "tasks.get_hyper_params", map[string]any{"tasks": []string{id}}, &resp); err != nil {
			u.failAPI(w, r, s, "The hyper-parameters of task "+id, err)
			return
		}
		var items []map[string]any
		if len(resp.Params) > 0 {
			items = resp.Params[0].Hyperparams
		}
		data["Params"] = items
		data["Editable"] = h.Draft && s.CanAct()
	case "configuration":
		var resp struct {
			Configurations []struct {
				Configuration []map[string]any `json:"configuration"`
			} `json:"configurations"`
		}
		if err := s.call(ctx, "tasks.get_configurations", map[string]any{"tasks": []string{id}}, &resp); err != nil {
			u.failAPI(w, r, s, "The configuration of task "+id, err)
			return
		}
		if len(resp.Configurations) > 0 {
			data["Config"] = resp.Configurations[0].Configuration
		}
	case "scalars":
		data["Series"] = []map[string]string{{"id": id, "name": h.Task.str("name")}}
	case "artifacts":
		data["Artifacts"] = u.artifacts(h.Task)
		data["Models"] = u.models(r, s, h.Task)
	case "debug-samples":
		samples, err := u.debugSamples(r, s, id)
		if err != nil {
			u.failAPI(w, r, s, "The debug samples of task "+id, err)
			return
		}
		data["Samples"] = samples
	}
	title := h.Task.str("name")
	u.render(w, r, s, http.StatusOK, name, title, data)
}

// taskStatus is the live status of a task, for pages that update it.
func (u *UI) taskStatus(w http.ResponseWriter, r *http.Request, s *session, id string) {
	var resp struct {
		Task taskDoc `json:"task"`
	}
	err := s.call(r.Context(), "tasks.get_by_id", map[string]any{"task": id}, &resp)
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	t := resp.Task
	writeJSON(w, http.StatusOK, map[string]any{"status": t.str("status"), "status_reason": t.str("status_reason"),
		"status_message": t.str("status_message"), "last_update": when(t.str("last_update")),
		"last_iteration": t.str("last_iteration"), "worker": t.str("last_worker")})
}

// editHyperParams sets one hyper-parameter of a draft task.
func (u *UI) editHyperParams(w http.ResponseWriter, r *http.Request, s *session, id string) {
	var req struct {
		Section string `json:"section"`
		Name    string `json:"name"`
		Value   string `json:"value"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		u.fail(w, r, s, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	// Keep the parameter's type and description: edit_hyper_params replaces
	// the whole item.
	var cur struct {
		Params []struct {
			Hyperparams []map[string]any `json:"hyperparams"`
		} `json:"params"`
	}
	item := map[string]any{"section": req.Section, "name": req.Name, "value": req.Value}
	if s.call(r.Context(), "tasks.get_hyper_params", map[string]any{"tasks": []string{id}}, &cur) == nil && len(cur.Params) > 0 {
		for _, p := range cur.Params[0].Hyperparams {
			if p["section"] == req.Section && p["name"] == req.Name {
				for _, k := range []string{"type", "description"} {
					if v, ok := p[k]; ok {
						item[k] = v
					}
				}
			}
		}
	}
	err := s.call(r.Context(), "tasks.edit_hyper_params", map[string]any{"task": id, "hyperparams": []any{item}}, nil)
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"done": 1})
}

// artifact is one of a task's artifacts.
type artifact struct {
	Key, Type, Mode, URI, Link, Hash, Preview string
	Size                                      float64
}

func (u *UI) artifacts(t taskDoc) []artifact {
	exec, _ := t["execution"].(map[string]any)
	items, _ := exec["artifacts"].([]any)
	var out []artifact
	for _, it := range items {
		m, _ := it.(map[string]any)
		a := taskDoc(m)
		size, _ := m["content_size"].(float64)
		out = append(out, artifact{Key: a.str("key"), Type: a.str("type"), Mode: a.str("mode"), URI: a.str("uri"),
			Link: u.fileLink(a.str("uri")), Hash: a.str("hash"), Preview: a.str("type_data.preview"), Size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// modelRef is one of a task's input or output models.
type modelRef struct {
	Kind, Name, ID, URI, Link, Framework string
}

func (u *UI) models(r *http.Request, s *session, t taskDoc) []modelRef {
	models, _ := t["models"].(map[string]any)
	var refs []modelRef
	var ids []string
	for _, kind := range []string{"input", "output"} {
		items, _ := models[kind].([]any)
		for _, it := range items {
			m := taskDoc(asMap(it))
			refs = append(refs, modelRef{Kind: kind, Name: m.str("name"), ID: m.str("model")})
			ids = append(ids, m.str("model"))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var resp struct {
		Models []taskDoc `json:"models"`
	}
	if s.call(r.Context(), "models.get_all", map[string]any{"id": ids, "only_fields": []string{"id", "name", "uri", "framework"}}, &resp) == nil {
		byID := map[string]taskDoc{}
		for _, m := range resp.Models {
			byID[m.str("id")] = m
		}
		for i, ref := range refs {
			if m, ok := byID[ref.ID]; ok {
				refs[i].URI, refs[i].Framework = m.str("uri"), m.str("framework")
				refs[i].Link = u.fileLink(refs[i].URI)
				if ref.Name == "" {
					refs[i].Name = m.str("name")
				}
			}
		}
	}
	return refs
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
