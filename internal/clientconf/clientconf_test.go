package clientconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateFilesServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.conf")
	if err := Write(ours, Client{APIServer: "http://h:8008", WebServer: "http://h:8008", FilesServer: "http://h:8008", AccessKey: "k", SecretKey: "s"}); err != nil {
		t.Fatal(err)
	}
	hand := filepath.Join(dir, "hand.conf")
	os.WriteFile(hand, []byte("api {\n    files_server: \"http://h:8008\"\n}\n"), 0o600)
	for _, tc := range []struct {
		path, old string
		changed   bool
	}{
		{ours, "http://other:1", false},
		{ours, "http://h:8008", true},
		{ours, "http://h:8008", false}, // already updated
		{hand, "http://h:8008", false}, // not written by us
	} {
		changed, err := UpdateFilesServer(tc.path, tc.old, "http://h:8008/files")
		if err != nil || changed != tc.changed {
			t.Errorf("UpdateFilesServer(%s, %s) = %v, %v; want %v", filepath.Base(tc.path), tc.old, changed, err, tc.changed)
		}
	}
	raw, _ := os.ReadFile(ours)
	if !strings.Contains(string(raw), `files_server: "http://h:8008/files"`) || !strings.Contains(string(raw), `api_server: "http://h:8008"`) {
		t.Fatalf("updated file:\n%s", raw)
	}
	if fi, _ := os.Stat(ours); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
