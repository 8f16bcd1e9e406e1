package webui_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// seedWork fills a server with what a team's day leaves: a project of
// runs with scalars, hyper-parameters, a debug image, an artifact, a log,
// a queue with waiting tasks and a worker reporting its utilisation.
func seedWork(t *testing.T, srv *uiServer) (ids []string) {
	t.Helper()
	adm := srv.admin()
	proj := srv.api(adm, "projects.create", map[string]any{"name": "vision/resnet", "description": "image classifiers"})["id"].(string)
	now := time.Now()
	for i, lr := range []string{"0.1", "0.03", "0.01", "0.003"} {
		id := srv.task("resnet50 lr="+lr, map[string]any{"project": proj, "tags": []string{"sweep"},
			"script": map[string]any{"repository": "https://github.com/example/vision.git", "branch": "main",
				"version_num": "4f1c2a9", "entry_point": "train.py", "working_dir": ".", "binary": "python3",
				"requirements": map[string]any{"pip": "torch==2.3.1\ntorchvision==0.18.1\n"}}})
		srv.api(adm, "tasks.edit_hyper_params", map[string]any{"task": id, "hyperparams": []map[string]any{
			{"section": "Args", "name": "lr", "value": lr}, {"section": "Args", "name": "batch_size", "value": "128"},
			{"section": "Args", "name": "epochs", "value": "90"}}})
		srv.api(adm, "tasks.edit_configuration", map[string]any{"task": id, "configuration": []map[string]any{
			{"name": "model", "type": "yaml", "value": "arch: resnet50\ndropout: 0.2\n"}}})
		ids = append(ids, id)
		if i == 3 {
			srv.api(adm, "tasks.enqueue", map[string]any{"task": id})
			continue
		}
		srv.api(adm, "tasks.started", map[string]any{"task": id})
		var evs []map[string]any
		rate, _ := parseFloat(lr)
		for it := range 120 {
			ts := now.Add(time.Duration(it-120) * 30 * time.Second).UnixMilli()
			loss := 2.3*math.Exp(-float64(it)*rate/2) + 0.05*math.Sin(float64(it)/3)
			evs = append(evs,
				map[string]any{"type": "training_stats_scalar", "task": id, "metric": "loss", "variant": "train", "iter": it * 100, "value": loss, "timestamp": ts},
				map[string]any{"type": "training_stats_scalar", "task": id, "metric": "loss", "variant": "validation", "iter": it * 100, "value": loss * 1.1, "timestamp": ts},
				map[string]any{"type": "training_stats_scalar", "task": id, "metric": "accuracy", "variant": "top1", "iter": it * 100, "value": 1 - loss/2.5, "timestamp": ts})
		}
		for l := range 40 {
			evs = append(evs, map[string]any{"type": "log", "task": id, "level": "info", "timestamp": now.Add(time.Duration(l-40) * time.Second).UnixMilli(),
				"msg": fmt.Sprintf("Epoch %d/90 step %d loss %.4f", l/10+1, l*50, 2.3*math.Exp(-float64(l)/20))})
		}
		evs = append(evs, map[string]any{"type": "plot", "task": id, "iter": 11900, "metric": "validation", "variant": "confusion",
			"timestamp": now.UnixMilli(), "plot_str": `{"data":[{"type":"heatmap","z":[[91,4,5],[6,88,6],[3,7,90]],"x":["cat","dog","bird"],"y":["cat","dog","bird"]}],"layout":{"title":"Confusion Matrix"}}`})
		srv.events(evs)
	}
	// A debug image and an artifact in the file server.
	imgURL := srv.upload("vision/resnet/"+ids[0]+"/metrics/samples/input/0001.png", testPNG())
	srv.events([]map[string]any{{"type": "training_debug_image", "task": ids[0], "iter": 100, "metric": "samples", "variant": "input",
		"url": imgURL, "timestamp": now.UnixMilli()}})
	artURL := srv.upload("vision/resnet/"+ids[0]+"/artifacts/metrics/metrics.json", []byte(`{"top1": 0.91}`))
	srv.api(adm, "tasks.add_or_update_artifacts", map[string]any{"task": ids[0], "force": true, "artifacts": []map[string]any{
		{"key": "metrics", "type": "JSON", "mode": "output", "uri": artURL, "content_size": 14}}})
	srv.api(adm, "tasks.completed", map[string]any{"task": ids[0], "force": true})
	// A worker running the second task, with its utilisation.
	for k := range 3 {
		srv.api(adm, "workers.status_report", map[string]any{"worker": "gpu-box:gpu0", "timestamp": now.Unix(), "task": ids[1],
			"queues": []string{srv.api(adm, "queues.get_default", nil)["id"].(string)},
			"machine_stats": map[string]any{"cpu_usage": []float64{35 + float64(k*10), 55}, "gpu_usage": []float64{80 + float64(k)},
				"memory_used": 12000, "memory_free": 20000, "gpu_memory_used": []float64{18000}, "gpu_memory_free": []float64{6000}}})
	}
	return ids
}

func parseFloat(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscanf(s, "%g", &f)
	return f, err
}

// testPNG is a small gradient image.
func testPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			img.Set(x, y, color.RGBA{uint8(x * 8), uint8(y * 8), 160, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// upload stores a file in the server's file server, as the SDK does, and
// returns its URL.
func (s *uiServer) upload(path string, data []byte) string {
	s.t.Helper()
	dir, name := path[:strings.LastIndex(path, "/")], path[strings.LastIndex(path, "/")+1:]
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile(name, name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", s.URL+"/files/"+dir, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", s.admin())
	if p := s.do(req); p.status != 200 {
		s.t.Fatalf("uploading %s: %d %s", path, p.status, p.body)
	}
	return s.URL + "/files/" + path
}

// TestEveryPage: each page shows what the API holds (dashboard, tasks,
// each tab of a task, compare, queues, workers, projects), debug images
// and artifacts load through the UI with the session, and a draft's
// hyper-parameter is edited in place. UI_SCREENSHOTS=folder saves them.
func TestEveryPage(t *testing.T) {
	srv := startServer(t)
	ids := seedWork(t, srv)
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	checks := []struct {
		path, ready, what string
	}{
		{"/", `document.querySelectorAll("#dashboard tbody tr").length >= 6 && document.querySelector("#dashboard svg.spark")`, "dashboard with queues, workers and tasks"},
		{"/tasks", `document.querySelectorAll("table.tasks tbody tr[data-id]").length === 4`, "the four tasks"},
		{"/tasks/" + ids[0], `document.querySelector(".tab dl.facts") && document.body.innerText.includes("4f1c2a9") && document.body.innerText.includes("torchvision")`, "overview"},
		{"/tasks/" + ids[0] + "/console", `document.querySelectorAll("#log .ln").length === 40`, "console"},
		{"/tasks/" + ids[1] + "/scalars", `document.querySelectorAll("#charts g.series").length === 3`, "scalars"},
		{"/tasks/" + ids[1] + "/plots", `document.querySelectorAll("svg.heatmap rect.cell").length === 9`, "plots"},
		{"/tasks/" + ids[0] + "/debug-samples", `[...document.querySelectorAll(".samples img")].some(i => i.complete && i.naturalWidth === 32)`, "a debug image loaded through the UI"},
		{"/tasks/" + ids[0] + "/hyper-params", `document.body.innerText.includes("batch_size")`, "hyper-parameters"},
		{"/tasks/" + ids[0] + "/configuration", `document.body.innerText.includes("arch: resnet50")`, "configuration"},
		{"/tasks/" + ids[0] + "/artifacts", `document.querySelector("a[download][href*='/ui-files/']")`, "artifact link"},
		{"/compare?ids=" + ids[0] + "," + ids[1] + "," + ids[2], `document.querySelectorAll("#charts g.series").length === 9 && document.querySelector("table.compare tr.differ")`, "compare"},
		{"/queues", `document.querySelectorAll(".queue li[data-task]").length === 1`, "queue entries"},
		{"/workers", `document.body.innerText.includes("gpu-box:gpu0") && document.querySelectorAll("#workers svg.spark").length === 4`, "worker utilisation"},
		{"/projects", `document.body.innerText.includes("vision/resnet")`, "projects"},
	}
	for _, c := range checks {
		do(t, ctx, chromedp.Navigate(srv.URL+c.path))
		waitJS(t, ctx, c.ready, 30*time.Second, c.what)
		name := strings.TrimPrefix(strings.SplitN(c.path, "?", 2)[0], "/")
		if name == "" {
			name = "dashboard"
		}
		screenshot(t, ctx, name)
	}
	// The artifact downloads with the session.
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+ids[0]+"/artifacts"), chromedp.WaitVisible(chromedp.CSS(`a[download]`)))
	body := js[string](t, ctx, `fetch(document.querySelector("a[download][href*='/ui-files/']").href).then(r => r.text())`)
	if body != `{"top1": 0.91}` {
		t.Fatalf("artifact download: %q", body)
	}
	// A draft's hyper-parameter, edited in place.
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+ids[3]+"/hyper-params"))
	srv.api(srv.admin(), "tasks.dequeue", map[string]any{"task": ids[3]})
	do(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`form.param-edit[data-name="lr"] input`)),
		chromedp.SetValue(chromedp.CSS(`form.param-edit[data-name="lr"] input`), "0.005"),
		chromedp.Click(chromedp.CSS(`form.param-edit[data-name="lr"] button`)))
	waitJS(t, ctx, `document.getElementById("toast").textContent.includes("saved")`, 30*time.Second, "the saved message")
	params := srv.api(srv.admin(), "tasks.get_hyper_params", map[string]any{"tasks": []string{ids[3]}})["params"].([]any)
	found := false
	for _, p := range params[0].(map[string]any)["hyperparams"].([]any) {
		m := p.(map[string]any)
		found = found || (m["name"] == "lr" && m["value"] == "0.005")
	}
	if !found {
		t.Fatalf("lr was not saved: %v", params)
	}
}
