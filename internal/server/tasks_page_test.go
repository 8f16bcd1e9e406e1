package server_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// asUser returns a client of a new user of the server with the given role.
func (c *client) asUser(name, role string) *client {
	c.t.Helper()
	id := c.ok("auth.create_user", map[string]any{"name": name, "role": role})["id"].(string)
	cr := c.ok("auth.create_credentials", map[string]any{"user": id})["credentials"].(map[string]any)
	req, _ := http.NewRequest("GET", c.ts.URL+"/auth.login", nil)
	req.SetBasicAuth(cr["access_key"].(string), cr["secret_key"].(string))
	code, env := do(c.t, req)
	if code != 200 {
		c.t.Fatalf("login as %s: %d %s", name, code, env.Meta.ResultMsg)
	}
	var data api.LoginResponse
	json.Unmarshal(env.Data, &data)
	cp := *c
	cp.token = data.Token
	return &cp
}

// TestTaskListFastPathMatchesGeneric: tasks.get_all answers every request
// the listing table can serve exactly as the generic path does (same
// tasks, same order, same page, same fields), over tasks that differ in
// every listed field, share values (ties) and miss some (never started).
func TestTaskListFastPathMatchesGeneric(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		other := c.asUser("other-user", "user")
		projA := c.ok("projects.create", map[string]any{"name": "proj-a"})["id"].(string)
		projB := c.ok("projects.create", map[string]any{"name": "proj-b"})["id"].(string)
		rng := rand.New(rand.NewPCG(1, 2))
		pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
		for i := range 60 {
			who := c
			if i%3 == 0 {
				who = other
			}
			body := map[string]any{"name": pick("alpha", "Beta", "gamma ray", "beta") + fmt.Sprint(i%4),
				"project": pick(projA, projB), "comment": pick("", "has a Needle", "plain"),
				"tags": []string{pick("x", "y", "z"), pick("x", "q\"uote", "w")}, "type": pick("training", "testing", "inference")}
			id := who.ok("tasks.create", body)["id"].(string)
			switch i % 4 {
			case 1:
				who.ok("tasks.started", map[string]any{"task": id})
			case 2:
				who.ok("tasks.enqueue", map[string]any{"task": id})
			case 3:
				who.ok("tasks.started", map[string]any{"task": id})
				who.ok("tasks.stopped", map[string]any{"task": id, "force": true})
			}
			if i%7 == 0 {
				c.ok("tasks.archive", map[string]any{"tasks": []string{id}})
			}
			if i%11 == 0 {
				c.ok("tasks.edit", map[string]any{"task": id, "system_tags": []string{"hidden"}, "force": true})
			}
		}
		statuses := []any{"created", "in_progress", "queued", "stopped", "-queued", "-created"}
		fields := []string{"created", "-created", "name", "-name", "status", "-status", "type", "-type", "last_update",
			"-last_update", "started", "-started"}
		now := time.Now().UTC()
		queries := []map[string]any{
			{},
			{"order_by": []string{"-created"}, "page": 0, "page_size": 7},
			{"order_by": []string{"-created"}, "page": 3, "page_size": 7},
			{"order_by": []string{"-created"}, "page": 30, "page_size": 7},
			{"search_hidden": true, "order_by": []string{"name", "-started"}},
			{"system_tags": []string{"-archived"}, "search_text": "needle"},
			{"system_tags": []string{"archived"}, "only_fields": []string{"id", "name", "status"}},
			{"tags": []string{"q\"uote", "-x"}},
			{"tags": "y", "type": []string{"-training"}},
			{"started": ">=" + now.Add(-time.Hour).Format(time.RFC3339Nano), "order_by": "-started"},
			{"started": []any{">2000-01-01", "<" + now.Add(time.Hour).Format("2006-01-02T15:04:05")}},
			{"user": []string{"-" + c.ok("users.get_current_user", nil)["user"].(map[string]any)["id"].(string)}},
			{"search_text": "BETA1", "order_by": []string{"-name", "type"}},
		}
		for range 60 {
			q := map[string]any{}
			if rng.IntN(2) == 0 {
				q["status"] = []any{statuses[rng.IntN(len(statuses))], statuses[rng.IntN(len(statuses))]}
			}
			if rng.IntN(3) == 0 {
				q["project"] = []string{pick(projA, projB)}
			}
			if rng.IntN(3) == 0 {
				q["tags"] = []string{pick("x", "y", "-z", "w", "-q\"uote")}
			}
			if rng.IntN(3) == 0 {
				q["system_tags"] = []string{pick("-archived", "archived", "hidden", "-hidden")}
			}
			if rng.IntN(4) == 0 {
				q["search_hidden"] = true
			}
			if rng.IntN(4) == 0 {
				q["search_text"] = pick("eta", "NEEDLE", "ray", "a1", "_", "%", `\`, "a%1")
			}
			q["order_by"] = []string{fields[rng.IntN(len(fields))], fields[rng.IntN(len(fields))]}
			q["page_size"] = 1 + rng.IntN(12)
			q["page"] = rng.IntN(5)
			queries = append(queries, q)
		}
		for _, q := range queries {
			if !server.FastTaskListable(q) {
				t.Fatalf("query %v does not take the fast path", q)
			}
			fast := c.ok("tasks.get_all", q)
			c.ts.Srv.SetFastTaskList(false)
			slow := c.ok("tasks.get_all", q)
			c.ts.Srv.SetFastTaskList(true)
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("query %v:\nfast: %v\ngeneric: %v", q, ids(fast), ids(slow))
			}
		}
	})
}

// TestTaskListScrollIsKeyset: a scroll (size, scroll_id) on the fast path
// lists, page after page, what the generic path lists at once, for every
// order (tasks without a start time included); tasks created during a
// scroll neither repeat nor shift the tasks not yet listed.
func TestTaskListScrollIsKeyset(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		for i := range 23 {
			id := c.ok("tasks.create", map[string]any{"name": fmt.Sprintf("task %d", i%5), "type": []string{"training", "testing"}[i%2]})["id"].(string)
			if i%3 == 0 {
				c.ok("tasks.started", map[string]any{"task": id})
			}
		}
		scrollAll := func(q map[string]any, size int, during func()) []string {
			var out []string
			scroll := ""
			for page := 0; ; page++ {
				body := maps.Clone(q)
				body["size"] = size
				if scroll != "" {
					body["scroll_id"] = scroll
				}
				if !server.FastTaskListable(body) {
					t.Fatalf("scroll %v does not take the fast path", body)
				}
				resp := c.ok("tasks.get_all", body)
				scroll = resp["scroll_id"].(string)
				got := ids(resp)
				if len(got) == 0 {
					return out
				}
				out = append(out, got...)
				if page == 1 && during != nil {
					during()
				}
			}
		}
		for _, field := range []string{"created", "last_update", "started", "name", "status", "type"} {
			for _, dir := range []string{"", "-"} {
				q := map[string]any{"order_by": []string{dir + field}, "only_fields": []string{"id"}}
				want := ids(c.ok("tasks.get_all", q))
				for _, size := range []int{1, 4, 500} {
					if got := scrollAll(q, size, nil); !slices.Equal(got, want) {
						t.Fatalf("order %s%s, size %d:\nscroll: %v\nlisting: %v", dir, field, size, got, want)
					}
				}
			}
		}
		// Newest first; two tasks created after the second page come
		// before the cursor: the scroll neither repeats nor skips any.
		q := map[string]any{"order_by": []string{"-created"}, "only_fields": []string{"id"}}
		before := ids(c.ok("tasks.get_all", q))
		got := scrollAll(q, 3, func() {
			c.ok("tasks.create", map[string]any{"name": "late 1", "type": "training"})
			c.ok("tasks.create", map[string]any{"name": "late 2", "type": "training"})
		})
		if !slices.Equal(got, before) {
			t.Fatalf("scroll with tasks created meanwhile:\nscroll: %v\nbefore: %v", got, before)
		}
	})
}

func ids(resp map[string]any) []string {
	var out []string
	for _, t := range resp["tasks"].([]any) {
		out = append(out, t.(map[string]any)["id"].(string))
	}
	return out
}

// TestTaskListFastPathDeclines: requests the listing table cannot answer
// exactly take the generic path.
func TestTaskListFastPathDeclines(t *testing.T) {
	t.Parallel()
	for _, body := range []map[string]any{
		{"id": []string{"a"}},
		{"name": "^x"},
		{"status": []any{"__$not", "created"}},
		{"tags": []any{nil}},
		{"tags": []string{"-"}},
		{"status": []string{""}},
		{"order_by": []string{"last_metrics.x"}},
		{"size": 10, "order_by": []string{"-created", "name"}},
		{"size": 0},
		{"scroll_id": "o10"},
		{"scroll_id": "k!"},
		{"page_size": 0},
		{"started": ">=1500-01-01"},
		{"hyperparams.Args.x": "1"},
	} {
		if server.FastTaskListable(body) {
			t.Errorf("%v takes the fast path", body)
		}
	}
}
