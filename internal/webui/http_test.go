package webui_test

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests drive the UI over plain HTTP, as scripts do (HTTP Basic on
// every page): no browser needed.

type page struct {
	status int
	body   string
	header http.Header
}

func (s *uiServer) get(auth, path string, hdr ...string) page {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return s.do(req)
}

func (s *uiServer) post(auth, path, body string, hdr ...string) page {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return s.do(req)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *uiServer) do(req *http.Request) page {
	s.t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(b), header: resp.Header}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrf reads the CSRF token a page gives these credentials.
func (s *uiServer) csrf(auth string) string {
	s.t.Helper()
	m := csrfMeta.FindStringSubmatch(s.get(auth, "/").body)
	if m == nil {
		s.t.Fatal("no CSRF token in the dashboard")
	}
	return m[1]
}

// TestHTTPAuthAndCSRF: pages need credentials (a page load goes to the
// sign-in page, a script gets 401); HTTP Basic works on every page; an
// action needs the CSRF token and a same-site origin.
func TestHTTPAuthAndCSRF(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	adm := srv.admin()
	id := srv.task("csrf target", nil)
	srv.api(adm, "tasks.enqueue", map[string]any{"task": id})
	if p := srv.get("", "/tasks?status=queued"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/login?next="+url.QueryEscape("/tasks?status=queued") {
		t.Fatalf("a page without a session: %d to %q", p.status, p.header.Get("Location"))
	}
	if p := srv.get(basic(srv.AccessKey, "wrong"), "/"); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "error") {
		t.Fatalf("wrong secret: %d %s", p.status, p.body)
	}
	for _, path := range []string{"/", "/tasks", "/tasks/" + id, "/tasks/" + id + "/console", "/tasks/" + id + "/scalars",
		"/tasks/" + id + "/plots", "/tasks/" + id + "/debug-samples", "/tasks/" + id + "/hyper-params",
		"/tasks/" + id + "/configuration", "/tasks/" + id + "/artifacts", "/queues", "/workers", "/projects"} {
		if p := srv.get(adm, path); p.status != 200 || !strings.Contains(p.body, `<main id="main"`) {
			t.Errorf("GET %s with Basic: %d", path, p.status)
		}
	}
	abort := `{"action":"abort","ids":["` + id + `"]}`
	token := srv.csrf(adm)
	if p := srv.post(adm, "/tasks/actions", abort); p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
		t.Fatalf("an action without the token: %d %s", p.status, p.body)
	}
	if p := srv.post(adm, "/tasks/actions", abort, "X-CSRF-Token", token, "Origin", "http://evil.example"); p.status != http.StatusForbidden {
		t.Fatalf("an action from another site: %d %s", p.status, p.body)
	}
	if p := srv.post(adm, "/tasks/actions", abort, "X-CSRF-Token", srv.csrf(basic(srv.user("other", "user")))); p.status != http.StatusForbidden {
		t.Fatalf("an action with another session's token: %d %s", p.status, p.body)
	}
	if st := srv.status(id); st != "queued" {
		t.Fatalf("a refused action changed the task: %s", st)
	}
	if p := srv.post(adm, "/tasks/actions", abort, "X-CSRF-Token", token, "Origin", srv.URL); p.status != 200 {
		t.Fatalf("the abort: %d %s", p.status, p.body)
	}
	if st := srv.status(id); st != "stopped" {
		t.Fatalf("after the abort the task is %s", st)
	}
	// A failed action answers the server's own message.
	p := srv.post(adm, "/tasks/actions", `{"action":"delete","ids":["`+id+`"]}`, "X-CSRF-Token", token)
	if p.status != 400 || !strings.Contains(p.body, "use force") {
		t.Fatalf("deleting a stopped task: %d %s", p.status, p.body)
	}
}

// TestHTTPPagesAndLinks: unknown ids get a 404 page; the SDK's "results
// page" links lead to the task's pages; clearml.conf's web_server is the
// UI; the console's lines, search, download and live stream work.
func TestHTTPPagesAndLinks(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	adm := srv.admin()
	conf, _ := os.ReadFile(srv.ConfigPath)
	if !strings.Contains(string(conf), `web_server: "`+srv.URL+`"`) {
		t.Fatalf("clearml.conf does not point web_server at the UI:\n%s", conf)
	}
	id := srv.task("links", nil)
	for _, path := range []string{"/tasks/" + strings.Repeat("a", 32), "/tasks/nothex", "/tasks/" + id + "/nosuchtab", "/nosuch"} {
		want := http.StatusNotFound
		if path == "/nosuch" {
			want = http.StatusBadRequest // not a UI path: the API's answer
		}
		if p := srv.get(adm, path); p.status != want {
			t.Errorf("GET %s: %d, want %d", path, p.status, want)
		}
	}
	for from, to := range map[string]string{
		"/projects/*/experiments/" + id + "/output/log":             "/tasks/" + id + "/console",
		"/projects/p1/tasks/" + id + "/output/log":                  "/tasks/" + id + "/console",
		"/projects/p1/experiments/" + id + "/output/metrics/scalar": "/tasks/" + id + "/scalars",
		"/projects/p1/experiments/" + id + "/execution":             "/tasks/" + id,
	} {
		if p := srv.get(adm, from); p.status != http.StatusFound || p.header.Get("Location") != to {
			t.Errorf("GET %s: %d to %q, want %s", from, p.status, p.header.Get("Location"), to)
		}
	}
	var evs []map[string]any
	now := time.Now().UnixMilli()
	for i := range 1200 {
		evs = append(evs, map[string]any{"type": "log", "task": id, "msg": "line " + strconv.Itoa(i) + "\n", "timestamp": now + int64(i)})
	}
	srv.events(evs)
	p := srv.get(adm, "/tasks/"+id+"/console")
	if !strings.Contains(p.body, "line 1199") || strings.Contains(p.body, ">line 699<") {
		t.Fatalf("the console page does not hold the newest 500 lines only")
	}
	earlier := regexp.MustCompile(`data-earlier="([^"]*)"`).FindStringSubmatch(p.body)[1]
	lines := srv.get(adm, "/tasks/"+id+"/console/lines?before="+url.QueryEscape(earlier))
	if !strings.Contains(lines.body, `"line 699"`) || !strings.Contains(lines.body, `"line 200"`) || strings.Contains(lines.body, `"line 199"`) {
		t.Fatalf("earlier lines: %.300s", lines.body)
	}
	if s := srv.get(adm, "/tasks/"+id+"/console/search?q=LINE+11"); !strings.Contains(s.body, `"scanned":1200`) || strings.Count(s.body, `"x":"line 11`) != 111 {
		t.Fatalf("search: %.300s", s.body)
	}
	dl := srv.get(adm, "/tasks/"+id+"/console/download")
	if strings.Count(dl.body, "\n") != 1200 || !strings.HasPrefix(dl.body, "line 0\nline 1\n") {
		t.Fatalf("download: %d lines", strings.Count(dl.body, "\n"))
	}
	// The live stream sends the lines added after its cursor.
	newest := regexp.MustCompile(`data-newest="([^"]*)"`).FindStringSubmatch(p.body)[1]
	req, _ := http.NewRequest("GET", srv.URL+"/tasks/"+id+"/console/stream?after="+url.QueryEscape(newest), nil)
	req.Header.Set("Authorization", adm)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	srv.events([]map[string]any{{"type": "log", "task": id, "msg": "live one", "timestamp": now + 5000}})
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			if !strings.Contains(sc.Text(), "live one") || strings.Contains(sc.Text(), "line 1199") {
				t.Fatalf("stream sent %s", sc.Text())
			}
			break
		}
	}
}

// TestHTTPPrefix: with --ui-prefix the UI lives under the prefix (links,
// assets and the session cookie too), the API keeps the root, and
// web_server names the prefixed address.
func TestHTTPPrefix(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--ui-prefix", "/clearml")
	conf, _ := os.ReadFile(srv.ConfigPath)
	if !strings.Contains(string(conf), `web_server: "`+srv.URL+`/clearml"`) {
		t.Fatalf("web_server with a prefix:\n%s", conf)
	}
	adm := srv.admin()
	p := srv.get(adm, "/clearml/tasks")
	if p.status != 200 || !strings.Contains(p.body, `href="/clearml/queues"`) || !strings.Contains(p.body, `src="/clearml/static/app.js?v=`) {
		t.Fatalf("prefixed tasks page: %d", p.status)
	}
	if p := srv.get("", "/clearml/"); p.header.Get("Location") != "/clearml/login?next=%2Fclearml%2F" {
		t.Fatalf("sign-in redirect: %q", p.header.Get("Location"))
	}
	if p := srv.get(adm, "/tasks"); p.status == 200 && strings.Contains(p.body, "<html") {
		t.Fatalf("the UI answered outside its prefix")
	}
	if d := srv.api(adm, "debug.ping", nil); d["msg"] == nil {
		t.Fatalf("the API at the root: %v", d)
	}
	form := url.Values{"access_key": {srv.AccessKey}, "secret_key": {srv.SecretKey}, "next": {"/clearml/queues"}}
	req, _ := http.NewRequest("POST", srv.URL+"/clearml/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	login := srv.do(req)
	cookie := login.header.Get("Set-Cookie")
	if login.status != http.StatusSeeOther || login.header.Get("Location") != "/clearml/queues" ||
		!strings.Contains(cookie, "Path=/clearml/") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") {
		t.Fatalf("sign-in: %d to %q, cookie %q", login.status, login.header.Get("Location"), cookie)
	}
}
