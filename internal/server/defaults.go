package server

import (
	"encoding/json"

	"github.com/goclearml/agent/internal/api"
)

// The reference server stores every field of its document models that has a
// default when it creates an object (list and map fields default to empty),
// and so returns them for every object. Clients rely on it: the SDK reads
// task.data.script.diff and walks task.data.execution.artifacts without a
// check. These are those defaults (reference apiserver/database/model).

// newTaskScript is the script section of a new task: the reference's
// Script() defaults, which the create request's own script then overrides.
// A reset with clear_all removes the section, as there.
func newTaskScript() map[string]any {
	return map[string]any{"binary": "python", "repository": "", "entry_point": "", "requirements": map[string]any{}}
}

// taskDefaults fills a task document with the sections and values the
// reference stores for every task.
func taskDefaults(doc map[string]any) {
	for _, k := range []string{"output", "execution", "models", "runtime", "container", "hyperparams", "configuration", "last_metrics"} {
		if _, ok := doc[k].(map[string]any); !ok {
			doc[k] = map[string]any{}
		}
	}
	exec := doc["execution"].(map[string]any)
	setDefault(exec, "test_split", json.Number("0"))
	for _, k := range []string{"parameters", "model_desc", "model_labels"} {
		if _, ok := exec[k].(map[string]any); !ok {
			exec[k] = map[string]any{}
		}
	}
	if _, ok := exec["artifacts"].([]any); !ok {
		exec["artifacts"] = []any{}
	}
	models := doc["models"].(map[string]any)
	for _, kind := range []string{"input", "output"} {
		if _, ok := models[kind].([]any); !ok {
			models[kind] = []any{}
		}
	}
	if script, ok := doc["script"].(map[string]any); ok {
		for k, v := range newTaskScript() {
			setDefault(script, k, v)
		}
	}
	for _, k := range []string{"tags", "system_tags"} {
		if _, ok := doc[k].([]any); !ok {
			doc[k] = []any{}
		}
	}
}

// modelView is the model document with the reference's model defaults.
func modelView(m *api.Model) map[string]any {
	doc := toDoc(m)
	for _, k := range []string{"design", "labels", "metadata", "last_metrics"} {
		if _, ok := doc[k].(map[string]any); !ok {
			doc[k] = map[string]any{}
		}
	}
	setDefault(doc, "last_iteration", json.Number("0")) // numbers as toDoc decodes them, for sorting
	setDefault(doc, "uri", "")
	for _, k := range []string{"tags", "system_tags"} {
		if _, ok := doc[k].([]any); !ok {
			doc[k] = []any{}
		}
	}
	return doc
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}
