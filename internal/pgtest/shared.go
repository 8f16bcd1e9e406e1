package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sharedStartTimeout bounds starting the shared cluster (initdb + start).
const sharedStartTimeout = 2 * time.Minute

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error

	mu      sync.Mutex
	stopped bool
}

var (
	dbCounter atomic.Int64
	// runTag tells apart databases that concurrent test binaries create on
	// one PGTEST_DSN server.
	runTag = func() string {
		b := make([]byte, 3)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
)

// NewDatabase returns the DSN of a new, empty database named after t.Name()
// (sanitised and made unique). The database lives on a cluster shared by the
// whole test binary, which is started on first use; call Cleanup from
// TestMain to stop it. When $PGTEST_DSN is set, the database is created on
// that server instead and dropped when the test ends.
//
// If the PostgreSQL server binaries are not installed, the test is skipped
// with a message saying what is missing; any other failure fails the test.
func NewDatabase(t testing.TB) (dsn string) {
	t.Helper()
	if ext := os.Getenv("PGTEST_DSN"); ext != "" {
		return externalDatabase(t, ext)
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		defer cancel()
		shared.cluster, shared.err = Start(ctx)
	})
	if errors.Is(shared.err, ErrNotInstalled) {
		t.Skip(shared.err.Error())
	}
	if shared.err != nil {
		t.Fatalf("starting the shared PostgreSQL cluster: %v", shared.err)
	}
	shared.mu.Lock()
	stopped := shared.stopped
	shared.mu.Unlock()
	if stopped {
		t.Fatal("pgtest: NewDatabase called after Cleanup")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := shared.cluster.CreateDatabase(ctx, databaseName(t.Name(), ""))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func externalDatabase(t testing.TB, server string) string {
	t.Helper()
	name := databaseName(t.Name(), runTag)
	dsn, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("pgtest: PGTEST_DSN: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := createDatabase(ctx, server, name); err != nil {
		t.Fatalf("%v (server from PGTEST_DSN)", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropDatabase(ctx, server, name); err != nil {
			t.Logf("pgtest: dropping database %s on the PGTEST_DSN server: %v", name, err)
		}
	})
	return dsn
}

func dropDatabase(ctx context.Context, server, name string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42601" { // before PostgreSQL 13: no WITH (FORCE)
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
	}
	return err
}

// withDatabase returns dsn (URL or keyword/value form) with its database
// replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later setting overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// Cleanup stops the cluster started by NewDatabase, if any. Call it from
// TestMain after m.Run.
func Cleanup() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.stopped {
		return
	}
	shared.stopped = true
	// Keep a later Do from starting a cluster nobody would stop.
	shared.once.Do(func() { shared.err = errors.New("pgtest: Cleanup already called") })
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// databaseName turns a test name into a unique database name: lower case,
// runs of characters other than [a-z0-9] turned into "_", a "_N" counter
// (and "_tag" when tag is not empty) appended, and at most 63 bytes long.
func databaseName(testName, tag string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
			b.WriteByte('_')
		}
	}
	base := strings.TrimRight(b.String(), "_")
	if base == "" {
		base = "t"
	} else if base[0] >= '0' && base[0] <= '9' {
		base = "t_" + base
	}
	suffix := "_" + strconv.FormatInt(dbCounter.Add(1), 10)
	if tag != "" {
		suffix += "_" + tag
	}
	if max := 63 - len(suffix); len(base) > max {
		base = strings.TrimRight(base[:max], "_")
	}
	return base + suffix
}
