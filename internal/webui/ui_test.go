package webui_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestSignInAndOut: the sign-in page refuses a wrong secret with the
// server's message, signs in with the right one, and signing out ends
// the session (the pages ask for a sign-in again).
func TestSignInAndOut(t *testing.T) {
	srv := startServer(t)
	ctx := newBrowser(t)
	do(t, ctx,
		chromedp.Navigate(srv.URL+"/tasks"),
		chromedp.WaitVisible(chromedp.ID("access_key")),
		chromedp.SendKeys(chromedp.ID("access_key"), srv.AccessKey),
		chromedp.SendKeys(chromedp.ID("secret_key"), "not the secret"),
		chromedp.Click(chromedp.CSS(`.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.login .error`)),
	)
	if msg := js[string](t, ctx, `document.querySelector(".login .error").innerText`); !strings.Contains(msg, "Sign-in failed") {
		t.Fatalf("error shown: %q", msg)
	}
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("secret_key"), srv.SecretKey),
		chromedp.Click(chromedp.CSS(`.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.tasks`)), // back where it started: /tasks
	)
	screenshot(t, ctx, "tasks-empty")
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`.who button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("access_key")),
		chromedp.Navigate(srv.URL+"/queues"),
		chromedp.WaitVisible(chromedp.ID("access_key")),
	)
}

// TestTasksTableFilters: the tasks table filters by status, project, tag
// and text, finds a task by id, and shows a 404 page for an unknown one.
func TestTasksTableFilters(t *testing.T) {
	srv := startServer(t)
	adm := srv.admin()
	projA := srv.api(adm, "projects.create", map[string]any{"name": "project alpha"})["id"].(string)
	projB := srv.api(adm, "projects.create", map[string]any{"name": "project beta"})["id"].(string)
	ids := map[string]string{}
	for i, name := range []string{"resnet small", "resnet large", "bert base", "bert tiny", "gpt nano"} {
		proj := projA
		if i%2 == 1 {
			proj = projB
		}
		ids[name] = srv.task(name, map[string]any{"project": proj, "tags": []string{fmt.Sprintf("tag%d", i%2)}})
	}
	srv.api(adm, "tasks.enqueue", map[string]any{"task": ids["bert base"]})
	srv.api(adm, "tasks.enqueue", map[string]any{"task": ids["gpt nano"]})
	srv.api(adm, "tasks.started", map[string]any{"task": ids["resnet large"]})
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	names := func() string {
		return js[string](t, ctx, `[...document.querySelectorAll("table.tasks tbody tr[data-id] td:nth-child(3) a")].map(a => a.textContent).sort().join(",")`)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks"), chromedp.WaitVisible(chromedp.CSS(`table.tasks`)))
	if got := names(); got != "bert base,bert tiny,gpt nano,resnet large,resnet small" {
		t.Fatalf("all tasks: %s", got)
	}
	cases := []struct {
		name  string
		steps []chromedp.Action[chromedp.Void]
		want  string
	}{
		{"status queued", []chromedp.Action[chromedp.Void]{clickJS(`input[name=status][value=queued]`)}, "bert base,gpt nano"},
		{"project beta", []chromedp.Action[chromedp.Void]{chromedp.SetValue(chromedp.ID("f-project"), projB)}, "bert tiny,resnet large"},
		{"tag0 and text", []chromedp.Action[chromedp.Void]{chromedp.SetValue(chromedp.ID("f-tag"), "tag0"), chromedp.SendKeys(chromedp.ID("f-q"), "BERT")}, "bert base"},
		{"status in progress", []chromedp.Action[chromedp.Void]{clickJS(`input[name=status][value=in_progress]`)}, "resnet large"},
		{"nothing matches", []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("f-q"), "no such task")}, ""},
	}
	for _, tc := range cases {
		steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(srv.URL + "/tasks"), chromedp.WaitVisible(chromedp.ID("apply-filters"))}, tc.steps...)
		steps = append(steps, navigating(`table.tasks`, chromedp.Click(chromedp.ID("apply-filters"))))
		do(t, ctx, steps...)
		if got := names(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// Sorting and paging: by name, two per page.
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks?sort=name&dir=asc&size=2&page=1"), chromedp.WaitVisible(chromedp.CSS(`table.tasks`)))
	if got := js[string](t, ctx, `[...document.querySelectorAll("table.tasks tbody td:nth-child(3) a")].map(a => a.textContent).join(",")`); got != "gpt nano,resnet large" {
		t.Errorf("page 2 by name: %q", got)
	}
	// Find by id; an unknown id is a 404 page.
	do(t, ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("find-id")),
		chromedp.SendKeys(chromedp.ID("find-id"), ids["gpt nano"]+"\r"), chromedp.WaitVisible(chromedp.CSS(`.task-head`)))
	if got := js[string](t, ctx, `document.querySelector(".task-head h1").textContent`); got != "gpt nano" {
		t.Fatalf("found %q", got)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+strings.Repeat("0", 32)), chromedp.WaitVisible(chromedp.CSS(`.error-page`)))
	if got := js[string](t, ctx, `document.querySelector(".error-page h1").textContent`); !strings.HasPrefix(got, "404") {
		t.Fatalf("unknown task: %q", got)
	}
}

// TestScalarsChart: every reported point of every series is in the chart
// (as many as were reported), with smoothing, the log scale and the time
// axis too; the keyboard shows the values at a point.
func TestScalarsChart(t *testing.T) {
	srv := startServer(t)
	id := srv.task("scalars", nil)
	srv.api(srv.admin(), "tasks.started", map[string]any{"task": id})
	now := time.Now().UnixMilli()
	var evs []map[string]any
	counts := map[string]int{"loss/train": 137, "loss/val": 41, "accuracy/top1": 88}
	for series, n := range counts {
		metric, variant, _ := strings.Cut(series, "/")
		for i := range n {
			evs = append(evs, map[string]any{"type": "training_stats_scalar", "task": id, "metric": metric, "variant": variant,
				"iter": i * 3, "value": 1 + math.Sin(float64(i)/7), "timestamp": now - int64(n-i)*1000})
		}
	}
	srv.events(evs)
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+id+"/scalars"))
	check := func(mode string) {
		t.Helper()
		waitJS(t, ctx, `document.querySelectorAll("#charts figure.chart").length === 2`, 30*time.Second, "two charts")
		got := js[map[string]float64](t, ctx, `Object.fromEntries([...document.querySelectorAll("#charts figure.chart")].flatMap(f =>
			[...f.querySelectorAll("g.series")].map(g => [f.querySelector("figcaption").textContent + "/" + g.dataset.label,
			g.querySelectorAll("circle.pt").length]))) `)
		for series, n := range counts {
			if int(got[series]) != n {
				t.Errorf("%s: %s has %v points drawn, want %d (all: %v)", mode, series, got[series], n, got)
			}
		}
	}
	check("iterations")
	screenshot(t, ctx, "scalars")
	do(t, ctx, clickJS(`#logscale`), chromedp.SetValue(chromedp.ID("smooth"), "0.6"))
	check("log scale, smoothed")
	do(t, ctx, chromedp.SetValue(chromedp.ID("xaxis"), "time"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("xaxis").dispatchEvent(new Event("change"))`))
	waitJS(t, ctx, `[...document.querySelectorAll("#charts .xlabel")].some(e => e.textContent.startsWith("time"))`, 30*time.Second, "the time axis")
	check("time axis")
	do(t, ctx, focusJS(`#charts figure.chart svg`), chromedp.KeyEvent(kb.ArrowRight))
	waitJS(t, ctx, `document.querySelector("#charts figure.chart .tip").textContent.includes(":")`, 10*time.Second, "hover values")
	// A redraw (a running task's charts refresh every 5 s) keeps the
	// keyboard's chart and its cursor.
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("#charts figure.chart .tip").textContent = "";
		document.dispatchEvent(new Event("ui:status"))`))
	waitJS(t, ctx, `document.querySelector("#charts figure.chart .tip").textContent.includes(":") &&
		document.activeElement === document.querySelector("#charts figure.chart svg")`, 10*time.Second, "the cursor and focus kept over a redraw")
}

// TestPlots: a confusion matrix, a table, a histogram and a scatter plot
// the way the SDK reports them render as such; another kind shows as JSON.
func TestPlots(t *testing.T) {
	srv := startServer(t)
	id := srv.task("plots", nil)
	srv.api(srv.admin(), "tasks.started", map[string]any{"task": id})
	plot := func(metric, variant, fig string) map[string]any {
		return map[string]any{"type": "plot", "task": id, "iter": 5, "metric": metric, "variant": variant, "plot_str": fig,
			"timestamp": time.Now().UnixMilli()}
	}
	srv.events([]map[string]any{
		plot("eval", "confusion", `{"data":[{"type":"heatmap","z":[[50,2,1,0],[3,45,4,1],[0,5,48,2]],"x":["cat","dog","bird","fish"],"y":["cat","dog","bird"]}],"layout":{"title":"Confusion Matrix","xaxis":{"title":"Predicted"},"yaxis":{"title":"Actual"}}}`),
		plot("eval", "per class", `{"data":[{"type":"table","header":{"values":["class","precision","recall"]},"cells":{"values":[["cat","dog","bird"],[0.94,0.9,0.91],[0.95,0.86,0.9]]}}],"layout":{"title":"per class"}}`),
		plot("weights", "histogram", `{"data":[{"type":"bar","name":"w","x":[-1,0,1,2],"y":[3,10,4,1]}],"layout":{}}`),
		plot("embedding", "scatter", `{"data":[{"type":"scatter","mode":"markers","name":"pts","x":[1,2,3,4,5],"y":[2,1,4,3,5]}],"layout":{}}`),
		plot("other", "surface", `{"data":[{"type":"surface","z":[[1,2],[3,4]]}],"layout":{}}`),
	})
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+id+"/plots"))
	waitJS(t, ctx, `document.querySelectorAll("#plots figure.plot").length === 5`, 30*time.Second, "five plots")
	screenshot(t, ctx, "plots")
	got := js[map[string]any](t, ctx, `({
		kinds: [...document.querySelectorAll("#plots figure.plot")].map(f => f.dataset.kind).join(","),
		cells: document.querySelectorAll("svg.heatmap rect.cell").length,
		rows: document.querySelector("svg.heatmap").dataset.rows + "x" + document.querySelector("svg.heatmap").dataset.cols,
		header: [...document.querySelectorAll("table.plot-table th")].map(th => th.textContent).join(","),
		table: [...document.querySelectorAll("table.plot-table tbody tr")].map(tr => [...tr.children].map(td => td.textContent).join(" ")).join(";"),
		bars: document.querySelectorAll("svg.bars rect.bar").length,
		points: document.querySelectorAll("figure.plot[data-kind=scatter] circle.pt").length,
		json: document.querySelector("figure.plot[data-kind=json] pre").textContent.includes("surface"),
	})`)
	want := map[string]any{"kinds": "embedding,eval,eval,other,weights", "cells": 12.0, "rows": "3x4",
		"header": "class,precision,recall", "table": "cat 0.94 0.95;dog 0.9 0.86;bird 0.91 0.9", "bars": 4.0, "points": 5.0, "json": true}
	want["kinds"] = "scatter,heatmap,table,json,bar"
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
