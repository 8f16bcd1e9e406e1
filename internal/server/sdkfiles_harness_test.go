package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/fileserver"
	"github.com/goclearml/agent/internal/server"
)

// The SDK flows against our server and its file server, over real HTTP.
// The Python SDK cannot be installed here, so these tests send the
// requests the SDK (clearml 2.1.x) sends for each flow, in its order, with
// its bodies, as read from its source and recorded in shared/captures.

// filesClient is a client of a server whose file server is on /files.
type filesClient struct {
	*client
	files string // the files_server URL
}

// forEachBackendWithFiles runs fn on each store back end with a server
// whose file server keeps files in a temporary folder.
func forEachBackendWithFiles(t *testing.T, fn func(t *testing.T, c *filesClient)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			blobs, err := fileserver.OpenLocal(filepath.Join(t.TempDir(), "files"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { blobs.Close() })
			fn(t, newFilesServer(t, b.open(t), blobs))
		})
	}
}

// newFilesServer is newTestServer with the file server mounted as Run does.
func newFilesServer(t *testing.T, dsn string, blobs fileserver.Blobs) *filesClient {
	t.Helper()
	st := openStore(t, dsn)
	srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	files := fileserver.New(fileserver.Config{Blobs: blobs, Authorize: srv.Authorize, MaxUploadBytes: 64 << 20})
	hs := httptest.NewServer(srv.WithFiles(server.DefaultFilesPrefix, files))
	t.Cleanup(hs.Close)
	creds, err := server.CreateCredentials(context.Background(), st, "")
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	c := &client{t: t, ts: &testServer{URL: hs.URL, Store: st, Srv: srv, Creds: creds}}
	c.login()
	return &filesClient{client: c, files: hs.URL + server.DefaultFilesPrefix}
}

// quotePath URL-quotes a file path as the SDK does when it builds a URL.
func quotePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// upload stores data at path on the file server as the SDK's HTTP driver
// does: a multipart POST to files_server with one file field named with
// the object path (which starts with "/"), Bearer token attached. It
// returns the file's URL.
func (c *filesClient) upload(path string, data []byte) string {
	c.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	w, _ := mw.CreateFormFile("/"+path, "/"+path)
	w.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", c.files, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("uploading %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var stored []string
	if resp.StatusCode != 200 || json.Unmarshal(raw, &stored) != nil || len(stored) != 1 || stored[0] != path {
		c.t.Fatalf("uploading %s: %d %s", path, resp.StatusCode, raw)
	}
	return c.files + "/" + quotePath(path)
}

// fileRequest sends method to a file URL with the client's token.
func (c *filesClient) fileRequest(method, u string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// sdkTaskInit is Task.init(project_name, task_name[, output_uri]) (spec 6.1
// steps 1-5, and the output_uri setter: tasks.edit output_dest after a
// reload). It returns the task id and the project id.
func (c *filesClient) sdkTaskInit(project, name, outputURI string) (string, string) {
	c.t.Helper()
	var pid string
	if found := c.ok("projects.get_all", map[string]any{"name": "^" + project + "$", "only_fields": []string{"id"}, "search_hidden": true})["projects"].([]any); len(found) > 0 {
		pid = found[0].(map[string]any)["id"].(string)
	} else {
		pid = c.ok("projects.create", map[string]any{"name": project, "description": ""})["id"].(string)
	}
	id := c.ok("tasks.create", map[string]any{"name": name, "type": "training", "comment": "Auto-generated at now by me@host",
		"project": pid, "system_tags": []string{"development"}})["id"].(string)
	task := c.task(id)
	// The SDK's typed model needs these sections to exist (it sets
	// output.destination, reads models.input/output).
	for _, section := range []string{"output", "execution", "models", "runtime"} {
		if _, ok := task[section].(map[string]any); !ok {
			c.t.Fatalf("a new task has no %s object: %v", section, task)
		}
	}
	models := task["models"].(map[string]any)
	if _, ok := models["input"].([]any); !ok {
		c.t.Fatalf("a new task's models.input is not a list: %v", models)
	}
	if _, ok := models["output"].([]any); !ok {
		c.t.Fatalf("a new task's models.output is not a list: %v", models)
	}
	c.ok("tasks.started", map[string]any{"task": id})
	c.task(id)
	c.ok("projects.get_by_id", map[string]any{"project": pid})
	if outputURI != "" {
		c.task(id)
		c.ok("tasks.edit", map[string]any{"task": id, "force": true, "output_dest": outputURI})
	}
	return id, pid
}
