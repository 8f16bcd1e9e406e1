package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/fileserver/s3test"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/testbin"
)

// TestFilesAcrossReplicasOnS3: two server processes on one PostgreSQL
// database, with the file server on one S3-compatible bucket, see each
// other's files: what is uploaded through one is served and deleted
// through the other, with a token either one issued.
func TestFilesAcrossReplicasOnS3(t *testing.T) {
	// Not parallel: the processes get the S3 credentials from the
	// environment, as in production.
	fake := s3test.Start(t, "shared-files")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	dsn := pgtest.NewDatabase(t)
	dir := t.TempDir()
	args := []string{"--db", dsn, "--files-s3", fake.URL + "/shared-files/clearml", "--files-s3-region", s3test.Region}
	replica := func(name string) *filesClient {
		p := testbin.StartServer(t, filepath.Join(dir, name), args...)
		conf, err := os.ReadFile(p.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), `files_server: "`+p.URL+`/files"`) {
			t.Fatalf("%s: clearml.conf does not point files_server at %s/files:\n%s", name, p.URL, conf)
		}
		c := &client{t: t, ts: &testServer{URL: p.URL, Creds: server.Credentials{AccessKey: p.AccessKey, SecretKey: p.SecretKey}}}
		c.login()
		return &filesClient{client: c, files: p.URL + "/files"}
	}
	a, b := replica("a"), replica("b")

	id, _ := a.sdkTaskInit("replicas", "shared files", a.files)
	data := []byte(strings.Repeat("shared artifact ", 10000))
	path := "replicas/shared files." + id + "/artifacts/blob/blob.bin"
	u := a.upload(path, data)
	a.ok("tasks.add_or_update_artifacts", map[string]any{"task": id, "force": true, "artifacts": []any{
		map[string]any{"key": "blob", "type": "custom", "mode": "output", "uri": u}}})

	// Replica b reads the task and the file (under its own address, and
	// with a token that a issued).
	arts := b.task(id)["execution"].(map[string]any)["artifacts"].([]any)
	if len(arts) != 1 {
		t.Fatalf("artifacts seen by b: %v", arts)
	}
	if code, body := b.fileRequest("GET", b.files+"/"+quotePath(path)); code != 200 || string(body) != string(data) {
		t.Fatalf("b serving a's upload: %d, %d bytes", code, len(body))
	}
	b.token = a.token
	if code, _ := b.fileRequest("HEAD", b.files+"/"+quotePath(path)); code != 200 {
		t.Fatalf("b with a's token: %d", code)
	}
	if code, _ := b.fileRequest("DELETE", b.files+"/"+quotePath(path)); code != 200 {
		t.Fatalf("b deleting: %d", code)
	}
	if code, _ := a.fileRequest("GET", u); code != 404 {
		t.Fatalf("a after b's delete: %d, want 404", code)
	}
	if fake.Verified.Load() == 0 || fake.Rejected.Load() != 0 {
		t.Fatalf("S3 requests: %d verified, %d refused", fake.Verified.Load(), fake.Rejected.Load())
	}
}

// TestServerProcessFiles: `clearml-agent server` runs the file server on
// /files by default and on its own address with --files-listen, writes it
// as files_server, keeps files in the data folder, and refuses requests
// without credentials.
func TestServerProcessFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"on /files", nil},
		{"own port", []string{"--files-listen", "127.0.0.1:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			p := testbin.StartServer(t, dataDir, tc.extra...)
			conf, err := os.ReadFile(p.ConfigPath)
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`files_server: "([^"]+)"`).FindSubmatch(conf)
			if m == nil || string(m[1]) == p.URL {
				t.Fatalf("files_server in clearml.conf: %s", conf)
			}
			c := &client{t: t, ts: &testServer{URL: p.URL, Creds: server.Credentials{AccessKey: p.AccessKey, SecretKey: p.SecretKey}}}
			c.login()
			fc := &filesClient{client: c, files: string(m[1])}
			u := fc.upload("proj/task.1/artifacts/x/x.txt", []byte("on disk"))
			if code, body := fc.fileRequest("GET", u); code != 200 || string(body) != "on disk" {
				t.Fatalf("GET: %d %q", code, body)
			}
			if raw, err := os.ReadFile(filepath.Join(dataDir, "files", "proj", "task.1", "artifacts", "x", "x.txt")); err != nil || string(raw) != "on disk" {
				t.Fatalf("file in the data folder: %q, %v", raw, err)
			}
			fc.token = ""
			if code, _ := fc.fileRequest("GET", u); code != 401 {
				t.Fatalf("GET without credentials: %d, want 401", code)
			}
		})
	}
}
