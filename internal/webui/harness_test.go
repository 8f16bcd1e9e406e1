package webui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	testbin.Cleanup()
	os.Exit(code)
}

// chromiumPath finds Debian's Chromium (or another Chrome), or skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("the web UI's browser tests need Chromium (Debian package chromium; ./test.sh installs it): not found on PATH")
	return ""
}

// newBrowser starts a headless Chromium for the test and returns its tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-gpu", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// uiServer is a real `clearml-agent server` process with its web UI.
type uiServer struct {
	*testbin.Server
	t *testing.T
}

func startServer(t *testing.T, extra ...string) *uiServer {
	t.Helper()
	return &uiServer{Server: testbin.StartServer(t, filepath.Join(t.TempDir(), "server"), extra...), t: t}
}

func basic(key, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret))
}

func (s *uiServer) admin() string { return basic(s.AccessKey, s.SecretKey) }

// api calls the API with the given credentials and fails the test on an
// error answer.
func (s *uiServer) api(auth, endpoint string, body any) map[string]any {
	s.t.Helper()
	data, err := s.tryAPI(auth, endpoint, body)
	if err != nil {
		s.t.Fatal(err)
	}
	return data
}

func (s *uiServer) tryAPI(auth, endpoint string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.URL+"/"+endpoint, bytes.NewReader(b))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Meta struct {
			ResultCode int    `json:"result_code"`
			ResultMsg  string `json:"result_msg"`
		} `json:"meta"`
		Data map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("%s: %v", endpoint, err)
	}
	if env.Meta.ResultCode != 200 {
		return nil, fmt.Errorf("%s: %d %s", endpoint, env.Meta.ResultCode, env.Meta.ResultMsg)
	}
	return env.Data, nil
}

// events posts events with events.add_batch.
func (s *uiServer) events(evs []map[string]any) {
	s.t.Helper()
	var b bytes.Buffer
	for _, e := range evs {
		json.NewEncoder(&b).Encode(e)
	}
	req, _ := http.NewRequest("POST", s.URL+"/events.add_batch", &b)
	req.Header.Set("Authorization", s.admin())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		out, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("events.add_batch: %d %s", resp.StatusCode, out)
	}
}

// task creates a task and returns its id.
func (s *uiServer) task(name string, extra map[string]any) string {
	s.t.Helper()
	body := map[string]any{"name": name, "type": "training"}
	for k, v := range extra {
		body[k] = v
	}
	return s.api(s.admin(), "tasks.create", body)["id"].(string)
}

// user makes a user with a role and returns its key pair as Basic.
func (s *uiServer) user(name, role string) (key, secret string) {
	s.t.Helper()
	id := s.api(s.admin(), "auth.create_user", map[string]any{"name": name, "role": role})["id"].(string)
	cr := s.api(s.admin(), "auth.create_credentials", map[string]any{"user": id})["credentials"].(map[string]any)
	return cr["access_key"].(string), cr["secret_key"].(string)
}

// signIn signs in through the sign-in page.
func signIn(t *testing.T, ctx context.Context, base, key, secret string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("access_key")),
		chromedp.SendKeys(chromedp.ID("access_key"), key),
		chromedp.SendKeys(chromedp.ID("secret_key"), secret),
		chromedp.Click(chromedp.CSS(`.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("dashboard")),
	)
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
}

// waitJS waits until a JavaScript expression is truthy (a DOM condition),
// polling it in the page, and fails the test with what after the timeout.
func waitJS(t *testing.T, ctx context.Context, expr string, timeout time.Duration, what string) {
	t.Helper()
	if err := pollCond(ctx, expr, timeout); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").innerText.slice(0, 2000) : ""`))
		t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, html)
	}
}

// js evaluates an expression in the page (awaiting a promise).
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// do runs browser actions or fails the test.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// clickJS clicks an element from JavaScript (for checkboxes: a click at
// coordinates can land on a label that the layout just moved).
func clickJS(selector string) chromedp.Action[chromedp.Void] {
	b, _ := json.Marshal(selector)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).click()`, b))
}

// focusJS focuses the element selector finds, in the page in one step: a
// chart can be drawn again at any time (a running task's charts refresh),
// and chromedp.Focus, which finds the node first and focuses it in a
// second call, then fails on a node that is gone ("Could not find node
// with given id").
func focusJS(selector string) chromedp.Action[chromedp.Void] {
	b, _ := json.Marshal(selector)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).focus()`, b))
}

// navigating runs steps that load a new page and waits until that page has
// loaded and shows selector (the old page may show it too, so the wait is
// on a marker that only the old page carries).
func navigating(selector string, steps ...chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	b, _ := json.Marshal(selector)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		all := append([]chromedp.Action[chromedp.Void]{chromedp.Evaluate[chromedp.Void](`window.__oldPage = true`)}, steps...)
		if err := chromedp.Do(ctx, all...); err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, pollCond(ctx, fmt.Sprintf(`!window.__oldPage && document.readyState === "complete" && !!document.querySelector(%s)`, b), time.Minute)
	}
}

// pollCond evaluates a JavaScript condition until it is true or the
// timeout passes. An evaluation that a navigation interrupts is retried.
func pollCond(ctx context.Context, expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (last error: %v)", expr, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// screenshot saves a PNG of the page when UI_SCREENSHOTS names a folder
// (for reviewing the pages by eye).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".png"), png, 0o644)
}
