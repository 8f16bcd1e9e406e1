package webui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
)

// Scalars, plots, debug samples and files.

// scalarSamples is how many points per series the charts ask for: the
// API's maximum; up to it every reported point comes back as it was, above
// it the server averages the points into this many buckets. The browser
// then draws at most two points per pixel column.
const scalarSamples = 6000

// scalarsData is a task's scalar series, by metric and variant.
func (u *UI) scalarsData(w http.ResponseWriter, r *http.Request, s *session, id string) {
	key := "iter"
	if r.URL.Query().Get("x") == "time" {
		key = "timestamp"
	}
	var resp map[string]map[string]struct {
		X     []float64 `json:"x"`
		Y     []float64 `json:"y"`
		Label string    `json:"x_axis_label,omitempty"`
	}
	err := s.call(r.Context(), "events.scalar_metrics_iter_histogram",
		map[string]any{"task": id, "samples": scalarSamples, "key": key}, &resp)
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"x": key, "metrics": resp})
}

// plotsData is a task's last plot of every metric and variant, with the
// Plotly figure the SDK reported.
func (u *UI) plotsData(w http.ResponseWriter, r *http.Request, s *session, id string) {
	var resp struct {
		Plots []map[string]any `json:"plots"`
	}
	err := s.call(r.Context(), "events.get_task_plots", map[string]any{"task": id, "iters": 1, "no_scroll": true}, &resp)
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	type plot struct {
		Metric  string          `json:"metric"`
		Variant string          `json:"variant"`
		Iter    float64         `json:"iter"`
		Figure  json.RawMessage `json:"figure"`
	}
	out := []plot{}
	for _, p := range resp.Plots {
		d := taskDoc(p)
		raw := d.str("plot_str")
		fig := json.RawMessage(raw)
		if !json.Valid(fig) {
			b, _ := json.Marshal(raw)
			fig = b
		}
		iter, _ := p["iter"].(float64)
		out = append(out, plot{Metric: d.str("metric"), Variant: d.str("variant"), Iter: iter, Figure: fig})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Variant < out[j].Variant
	})
	writeJSON(w, http.StatusOK, map[string]any{"plots": out})
}

type eventsResponse struct {
	Events []map[string]any `json:"events"`
}

// sample is one debug sample (an image, or another file) of an iteration.
type sample struct {
	Metric, Variant, URL, Link string
	Image                      bool
}

// sampleRow is the debug samples of one iteration.
type sampleRow struct {
	Iter    int64
	Samples []sample
}

// debugSamples reads the newest debug samples, grouped by iteration
// (newest first) and ordered by metric and variant within one.
func (u *UI) debugSamples(r *http.Request, s *session, id string) ([]sampleRow, error) {
	var resp eventsResponse
	err := s.call(r.Context(), "events.get_task_events", map[string]any{"task": id, "event_type": "training_debug_image",
		"order": "desc", "batch_size": 500}, &resp)
	if err != nil {
		return nil, err
	}
	byIter := map[int64][]sample{}
	seen := map[string]bool{}
	for _, e := range resp.Events {
		d := taskDoc(e)
		iter, _ := e["iter"].(float64)
		k := d.str("metric") + "\x00" + d.str("variant") + "\x00" + d.str("iter")
		if seen[k] {
			continue // an older report of the same sample
		}
		seen[k] = true
		link := u.fileLink(d.str("url"))
		ext := strings.ToLower(path.Ext(strings.SplitN(d.str("url"), "?", 2)[0]))
		image := contains([]string{".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg"}, ext)
		byIter[int64(iter)] = append(byIter[int64(iter)], sample{Metric: d.str("metric"), Variant: d.str("variant"),
			URL: d.str("url"), Link: link, Image: image && link != ""})
	}
	var rows []sampleRow
	for it, ss := range byIter {
		sort.Slice(ss, func(i, j int) bool {
			if ss[i].Metric != ss[j].Metric {
				return ss[i].Metric < ss[j].Metric
			}
			return ss[i].Variant < ss[j].Variant
		})
		rows = append(rows, sampleRow{Iter: it, Samples: ss})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Iter > rows[j].Iter })
	return rows, nil
}

// fileLink is where the UI links a stored file: through the UI when it is
// on this server's file server (so the user's session authorizes it), as
// is for another web address, nowhere for other schemes (s3://, file://).
func (u *UI) fileLink(uri string) string {
	if u.cfg.Files != nil && u.cfg.FilesURL != "" {
		if rest, ok := strings.CutPrefix(uri, strings.TrimRight(u.cfg.FilesURL, "/")+"/"); ok {
			return u.path("/ui-files/" + rest)
		}
	}
	if p, err := url.Parse(uri); err == nil && (p.Scheme == "http" || p.Scheme == "https") {
		return uri
	}
	return ""
}

// serveFile downloads a file of the file server with the user's
// credentials (read only: the UI never uploads or deletes).
func (u *UI) serveFile(w http.ResponseWriter, r *http.Request, s *session, rel string) {
	if u.cfg.Files == nil {
		u.fail(w, r, s, http.StatusNotFound, "This server has no file server on its listener.")
		return
	}
	req := r.Clone(r.Context())
	req.URL = &url.URL{Path: rel, RawQuery: r.URL.RawQuery}
	req.RequestURI = ""
	req.Header = http.Header{}
	for _, h := range []string{"Range", "If-None-Match", "If-Modified-Since", "If-Range"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set("Authorization", s.auth)
	u.cfg.Files.ServeHTTP(w, req)
}
