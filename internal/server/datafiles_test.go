package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/testbin"
)

// TestDataFilesPrivate: the server's files (the database, which holds the
// token-signing secret, its WAL, the client configuration, the lock) are
// readable by their owner only, even in a data folder that already
// existed open to everyone, and the server warns about such a folder.
// Before, clearml.db was created 0644, and any local user could read the
// secret and forge an admin token.
func TestDataFilesPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	s := testbin.StartServer(t, dir)
	pc := newProcClient(t, s)
	if err := pc.call("projects.create", map[string]any{"name": "private files", "description": ""}, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clearml.db", "clearml.db-wal", "clearml.db-shm", "clearml.conf", "server.lock"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if os.IsNotExist(err) && strings.HasSuffix(name, "-shm") {
			continue // SQLite keeps its shared memory in memory
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if m := st.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s has mode %#o: other users can read it", name, m)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "files")); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("files folder: %v, %v", st.Mode(), err)
	}
	s.Stop()
	log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	if !strings.Contains(string(log), "data folder "+dir+" can be read by other users") {
		t.Errorf("no warning about the open data folder in the log:\n%s", log)
	}
}
