package pgtest

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestNewDatabaseRoundTrip(t *testing.T) {
	start := time.Now()
	dsn := NewDatabase(t)
	t.Logf("NewDatabase (including shared cluster start on first use) took %v: %s", time.Since(start), dsn)

	ctx := context.Background()
	db := openDB(t, dsn)
	if _, err := db.ExecContext(ctx, `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpha", "beta", "gämma"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO items (name) VALUES ($1)`, name); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id int
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", id, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "1:alpha 2:beta 3:gämma"; strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	var version string
	if err := db.QueryRowContext(ctx, `SHOW server_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := db.QueryRowContext(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	t.Logf("server_version %s, fsync %s", version, fsync)
}

func TestNewDatabaseIndependent(t *testing.T) {
	dsn1, dsn2 := NewDatabase(t), NewDatabase(t)
	if dsn1 == dsn2 {
		t.Fatalf("two calls returned the same DSN %s", dsn1)
	}
	ctx := context.Background()
	db1, db2 := openDB(t, dsn1), openDB(t, dsn2)

	var name1, name2 string
	if err := db1.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name1); err != nil {
		t.Fatal(err)
	}
	if err := db2.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name2); err != nil {
		t.Fatal(err)
	}
	if name1 == name2 {
		t.Fatalf("both DSNs reach database %s", name1)
	}
	t.Logf("databases %s and %s", name1, name2)

	if _, err := db1.ExecContext(ctx, `CREATE TABLE only_in_one (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db1.ExecContext(ctx, `INSERT INTO only_in_one VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var found sql.NullString
	if err := db2.QueryRowContext(ctx, `SELECT to_regclass('only_in_one')::text`).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found.Valid {
		t.Fatalf("table created in %s is visible in %s", name1, name2)
	}
	// The second database is usable on its own.
	if _, err := db2.ExecContext(ctx, `CREATE TABLE only_in_one (y text)`); err != nil {
		t.Fatal(err)
	}
}

func TestParallelDatabases(t *testing.T) {
	for i := 0; i < 4; i++ {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			db := openDB(t, NewDatabase(t))
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("new database has %d tables", n)
			}
		})
	}
}

// startOwn starts a private cluster, skipping the test when PostgreSQL is
// not installed.
func startOwn(t *testing.T) (*Cluster, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := Start(ctx)
	took := time.Since(start)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c, took
}

func TestStartStop(t *testing.T) {
	c, took := startOwn(t)
	t.Logf("Start (initdb + postgres ready) took %v; port %d, dir %s", took, c.Port(), c.Dir())

	if _, err := os.Stat(c.LogPath()); err != nil {
		t.Errorf("server log: %v", err)
	}
	ctx := context.Background()
	createStart := time.Now()
	dsn, err := c.CreateDatabase(ctx, "Mixed Case-name")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CreateDatabase took %v", time.Since(createStart))
	if want := c.DSN("Mixed Case-name"); dsn != want {
		t.Errorf("CreateDatabase returned %s, want %s", dsn, want)
	}
	db := openDB(t, dsn)
	var name string
	if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name != "Mixed Case-name" {
		t.Errorf("connected to %q", name)
	}
	db.Close()

	stopStart := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(stopStart))
	if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v (want it gone)", c.Dir(), err)
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port()), time.Second); err == nil {
		conn.Close()
		t.Errorf("after Stop, port %d still accepts connections", c.Port())
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestCrashedParentLeavesNoServer kills a test binary that has a cluster
// running and checks that its server goes away with it, and that the next
// Start sweeps the temporary directory it left behind.
func TestCrashedParentLeavesNoServer(t *testing.T) {
	if os.Getenv("PGTEST_CRASH_CHILD") == "1" {
		c, err := Start(context.Background())
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("READY", c.Port(), c.Dir())
		// Wait to be killed; should the parent die first, its end of
		// stdin closes and this returns.
		io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ties the server's life to the test binary's")
	}
	if _, err := FindBinDir(); errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedParentLeavesNoServer$")
	cmd.Env = append(os.Environ(), "PGTEST_CRASH_CHILD=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child: %v", err)
	}
	var port int
	var dir string
	if _, err := fmt.Sscanf(line, "READY %d %s", &port, &dir); err != nil {
		t.Fatalf("child said %q", line)
	}
	pid := postmasterPID(t, dir)
	if !processAlive(pid) {
		t.Fatalf("postmaster %d not running", pid)
	}

	cmd.Process.Kill()
	cmd.Wait()
	testwait.Until(t, 30*time.Second, func() bool { return !processAlive(pid) && !portOpen(port) },
		fmt.Sprintf("postmaster %d and port %d to go with the test binary", pid, port))

	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("expected the crashed binary's directory to remain until swept: %v", err)
	}
	sweepStale(filepath.Dir(dir))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("sweepStale left %s: %v", dir, err)
	}
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func portOpen(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func TestSweepKeepsLiveDirectories(t *testing.T) {
	base := t.TempDir()
	live := filepath.Join(base, dirPrefix+"live")
	dead := filepath.Join(base, dirPrefix+"dead")
	foreign := filepath.Join(base, dirPrefix+"noowner")
	for _, d := range []string{live, dead, foreign} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(live, ownerFile), []byte(strconv.Itoa(os.Getppid())), 0o644)
	// A finished child's pid is free (until reused).
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, ownerFile), []byte(strconv.Itoa(child.Process.Pid)), 0o644)

	sweepStale(base)
	for d, wantKept := range map[string]bool{live: true, dead: false, foreign: true} {
		_, err := os.Stat(d)
		if kept := err == nil; kept != wantKept {
			t.Errorf("%s: kept=%v, want %v", filepath.Base(d), kept, wantKept)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	seen := map[string]bool{}
	for _, in := range []string{
		"TestFoo",
		"TestFoo",
		"TestFoo/sub case #01",
		"Test/ünïcode/..",
		"123",
		"",
		"///",
		strings.Repeat("TestVeryLongName", 10),
	} {
		for _, tag := range []string{"", "a1b2c3"} {
			got := databaseName(in, tag)
			if len(got) > 63 {
				t.Errorf("databaseName(%q) = %q: %d bytes", in, got, len(got))
			}
			if seen[got] {
				t.Errorf("databaseName(%q) = %q again", in, got)
			}
			seen[got] = true
			for i, r := range got {
				ok := r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9'
				if !ok {
					t.Errorf("databaseName(%q) = %q: bad character %q at %d", in, got, r, i)
				}
			}
			if tag != "" && !strings.HasSuffix(got, "_"+tag) {
				t.Errorf("databaseName(%q, %q) = %q: tag missing", in, tag, got)
			}
		}
	}
	if got := databaseName("TestFoo/sub case #01", ""); !strings.HasPrefix(got, "testfoo_sub_case_01_") {
		t.Errorf("databaseName sanitised to %q", got)
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@db.example:5433/old?sslmode=disable": "postgres://u:p@db.example:5433/newdb?sslmode=disable",
		"postgresql://u@h":                "postgresql://u@h/newdb",
		"host=h user=u dbname=old ":       "host=h user=u dbname=old dbname=newdb",
		"host=/var/run/postgresql user=u": "host=/var/run/postgresql user=u dbname=newdb",
	} {
		got, err := withDatabase(in, "newdb")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestFindBinDir(t *testing.T) {
	if dir, err := FindBinDir(); err == nil {
		t.Logf("server binaries in %s", dir)
	} else {
		t.Logf("FindBinDir: %v", err)
	}

	// Nothing anywhere: the error says what is missing and how to fix it.
	saved := searchDirs
	t.Cleanup(func() { searchDirs = saved })
	searchDirs = []string{filepath.Join(t.TempDir(), "*", "bin")}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("PGTEST_BIN_DIR", "")
	_, err := FindBinDir()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{"initdb", "postgres", "install postgresql-15", "PGTEST_BIN_DIR", "PGTEST_DSN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// An explicit PGTEST_BIN_DIR without the binaries is a configuration
	// error, not a reason to skip.
	t.Setenv("PGTEST_BIN_DIR", t.TempDir())
	_, err = FindBinDir()
	if err == nil || errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "lacks initdb, postgres") {
		t.Errorf("bad PGTEST_BIN_DIR: got %v", err)
	}
}

func TestNewestFirst(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "10", "14"} {
		os.MkdirAll(filepath.Join(root, v, "bin"), 0o755)
	}
	got := newestFirst(filepath.Join(root, "*", "bin"))
	var versions []string
	for _, d := range got {
		versions = append(versions, filepath.Base(filepath.Dir(d)))
	}
	if want := "15 14 10 9.6"; strings.Join(versions, " ") != want {
		t.Errorf("got %v, want %s", versions, want)
	}
}
