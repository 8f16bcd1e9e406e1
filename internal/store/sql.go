package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"

	"github.com/goclearml/agent/internal/api"
)

// sqlStore implements Store over database/sql.
type sqlStore struct {
	dialect string
	// write serves Update and read serves View; today both back ends use
	// one pool for both.
	write *sql.DB
	read  *sql.DB
	// stmts caches prepared statements per pool (SQLite only: pgx keeps its
	// own per-connection statement cache). Preparing is a large part of a
	// small statement's cost in the pure-Go SQLite.
	stmts map[*sql.DB]*stmtCache
	// reqs feeds the SQLite group-commit writer (batch.go); nil for
	// PostgreSQL, where concurrent transactions run in parallel.
	reqs       chan *batchReq
	stopWriter chan struct{}
	writerDone chan struct{}
	// searchFTS: the SQLite listing's search index (task_search) exists
	// and is kept (set once migrated).
	searchFTS bool
	// maxSparse is the most candidates of a text search looked up by
	// their search rows (maxSparseSearch).
	maxSparse int
	// searchTrigram: PostgreSQL's trigram index of the search column
	// exists (checked once migrated; see trigramSearchCondition).
	searchTrigram bool
}

// stmtCache holds the prepared statements of one pool.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxCachedStmts bounds the cache: queries with variable-length IN lists
// would otherwise grow it without end.
const maxCachedStmts = 256

// get returns the cached statement for q, or nil.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// prepare adds statements to the cache. It runs between transactions: the
// SQLite write pool has one connection, which a transaction holds.
func (c *stmtCache) prepare(db *sql.DB, queries []string) {
	for _, q := range queries {
		c.mu.Lock()
		_, ok := c.m[q]
		full := len(c.m) >= maxCachedStmts
		c.mu.Unlock()
		if ok || full {
			continue
		}
		st, err := db.PrepareContext(context.Background(), q)
		if err != nil {
			continue // the query runs unprepared and reports its error there
		}
		c.mu.Lock()
		if _, ok := c.m[q]; ok {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// Open opens the store named by dsn: a postgres:// or postgresql:// URL for
// PostgreSQL, otherwise a path to an SQLite file (created if missing). The
// schema is migrated to the current version.
func Open(ctx context.Context, dsn string) (Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// Options tune a store.
type Options struct {
	// SQLiteSync is SQLite's synchronous setting: "normal" (the default)
	// or "full".
	//
	// Both acknowledge a write only after it committed, and both keep every
	// committed write when the server process dies (kill -9): a commit is
	// in the write-ahead log, in the operating system's hands, before it
	// returns. They differ on a power loss or an operating-system crash:
	// with "normal" the last transactions before it may be rolled back
	// (the database stays consistent); "full" flushes the log to disk at
	// every commit (one flush per group commit, see batch.go) and loses
	// nothing; on this project's development machine that cost a third of
	// the enqueue throughput over HTTP (docs/benchmarks.md). PostgreSQL has
	// its own settings (fsync, synchronous_commit).
	SQLiteSync string
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn)
	}
	sync := strings.ToUpper(o.SQLiteSync)
	switch sync {
	case "":
		sync = "NORMAL"
	case "NORMAL", "FULL":
	default:
		return nil, fmt.Errorf("opening sqlite: synchronous must be normal or full, not %q", o.SQLiteSync)
	}
	return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"), sync)
}

func openSQLite(ctx context.Context, path, sync string) (Store, error) {
	if path == "" {
		return nil, errors.New("opening sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating database folder: %w", err)
		}
	}
	// One connection in exclusive locking mode: the file belongs to this
	// process (several replicas need PostgreSQL), so SQLite can keep its
	// WAL index in memory and skip the file locks and shared-memory checks
	// that otherwise dominate the cost of each small transaction.
	// Transactions begin IMMEDIATE, so writers queue in Go, never on
	// SQLITE_BUSY. The page cache is 16 MiB: reads go through the memory
	// map, and in the pure-Go SQLite a cached page costs about twice its
	// size in resident memory, which stays after a large transaction (a
	// 64 MiB cache kept ~130 MiB after six 27 MiB event batches), with no
	// gain measured on the enqueue benchmark.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=locking_mode(EXCLUSIVE)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(" + sync + ")&_pragma=foreign_keys(0)&_pragma=mmap_size(268435456)&_pragma=cache_size(-16384)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &sqlStore{dialect: "sqlite", write: db, read: db, stmts: map[*sql.DB]*stmtCache{db: {m: map[string]*sql.Stmt{}}},
		maxSparse: maxSparseSearch}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.searchFTS = true // migration 8 made it; earlier migrations write no search rows
	s.startWriter()
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	// A database that is still starting (started beside the server, or
	// restarting) is waited for, up to a minute.
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := db.PingContext(pctx)
		if err == nil {
			break
		}
		// The server answered with a refusal (bad password, no such
		// database): waiting changes nothing. 57P03 is "starting up".
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" {
			db.Close()
			return nil, fmt.Errorf("connecting to postgres: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-pctx.Done():
			t.Stop()
			db.Close()
			return nil, fmt.Errorf("connecting to postgres: %w", err)
		case <-t.C:
		}
	}
	s := &sqlStore{dialect: "postgres", write: db, read: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('task_list_search') IS NOT NULL`).Scan(&s.searchTrigram); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening postgres: looking for the search index: %w", err)
	}
	return s, nil
}

func (s *sqlStore) Dialect() string { return s.dialect }

func (s *sqlStore) Close() error {
	if s.stopWriter != nil {
		close(s.stopWriter)
		<-s.writerDone
	}
	for _, c := range s.stmts {
		for _, st := range c.m {
			st.Close()
		}
	}
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// maxAttempts bounds retries of a transaction that lost a serialization race.
const maxAttempts = 20

func (s *sqlStore) Update(parent context.Context, fn func(Tx) error) error {
	if s.reqs != nil {
		return s.updateBatched(parent, fn)
	}
	return s.retry(parent, func(ctx context.Context) error { return s.runTx(ctx, s.write, true, fn) })
}

// LeaseHead runs Tx.LeaseHead as a transaction of its own. On PostgreSQL
// that is its one statement on its own (one round trip; in Update, BEGIN
// and COMMIT make three); the task's row is not locked after it returns.
// On SQLite it is an Update.
func (s *sqlStore) LeaseHead(parent context.Context, queueID, company string, l Lease) (e *api.QueueEntry, status string, err error) {
	if s.dialect != "postgres" {
		err = s.Update(parent, func(tx Tx) error {
			var err error
			e, status, err = tx.LeaseHead(queueID, company, l)
			return err
		})
		return e, status, err
	}
	err = s.retry(parent, func(ctx context.Context) error {
		t := &sqlTx{s: s, q: s.write, pool: s.write, ctx: ctx, writable: true}
		var err error
		e, status, err = t.LeaseHead(queueID, company, l)
		return err
	})
	return e, status, err
}

// retry runs one attempt of a transaction, again while it loses a
// serialization race (PostgreSQL), up to maxAttempts.
func (s *sqlStore) retry(parent context.Context, once func(context.Context) error) error {
	ctx, cancel := s.bounded(parent)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := classify(parent, once(ctx))
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		// Back off a little so that the transactions that collided do not
		// collide again in lock step.
		d := time.Duration(rand.IntN(1000*attempt)) * time.Microsecond
		select {
		case <-ctx.Done():
			return classify(parent, ctx.Err())
		case <-time.After(d):
		}
	}
}

func (s *sqlStore) View(parent context.Context, fn func(Tx) error) error {
	ctx, cancel := s.bounded(parent)
	defer cancel()
	t := &sqlTx{s: s, q: s.read, pool: s.read, ctx: ctx}
	err := fn(t)
	t.prepareMisses()
	return classify(parent, err)
}

// prepareMisses caches the statements this transaction ran unprepared.
func (t *sqlTx) prepareMisses() {
	if c := t.s.stmts[t.pool]; c != nil && len(t.misses) > 0 {
		c.prepare(t.pool, t.misses)
	}
}

func (s *sqlStore) runTx(ctx context.Context, db *sql.DB, writable bool, fn func(Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	t := &sqlTx{s: s, q: tx, tx: tx, pool: db, ctx: ctx, writable: writable}
	defer t.prepareMisses()
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// retryable reports a PostgreSQL serialization failure or deadlock.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return false
}

// queryer is what *sql.DB and *sql.Tx have in common.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlTx struct {
	s        *sqlStore
	q        queryer
	tx       *sql.Tx // nil in View
	pool     *sql.DB
	misses   []string // statements to prepare after the transaction
	ctx      context.Context
	writable bool
	known    map[string]taskKeys // task rows read or written (SQLite), see PutTask
}

// rebind turns '?' placeholders into PostgreSQL's $n.
func (t *sqlTx) rebind(q string) string {
	if t.s.dialect != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// lockClause is appended to SELECTs of rows an Update will change.
func (t *sqlTx) lockClause() string {
	if t.writable && t.s.dialect == "postgres" {
		return " FOR UPDATE"
	}
	return ""
}

// prepared returns a cached prepared statement for q bound to this
// transaction, or nil to run q directly.
func (t *sqlTx) prepared(q string) *sql.Stmt {
	c := t.s.stmts[t.pool]
	if c == nil {
		return nil
	}
	st := c.get(q)
	if st == nil {
		t.misses = append(t.misses, q)
		return nil
	}
	if t.tx == nil {
		return st
	}
	return t.tx.StmtContext(t.ctx, st)
}

func (t *sqlTx) exec(q string, args ...any) (sql.Result, error) {
	q = t.rebind(q)
	if st := t.prepared(q); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.q.ExecContext(t.ctx, q, args...)
}

func (t *sqlTx) query(q string, args ...any) (*sql.Rows, error) {
	q = t.rebind(q)
	if st := t.prepared(q); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.q.QueryContext(t.ctx, q, args...)
}

func (t *sqlTx) queryRow(q string, args ...any) *sql.Row {
	q = t.rebind(q)
	if st := t.prepared(q); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.q.QueryRowContext(t.ctx, q, args...)
}

// inList returns the condition "col is one of vals" and its one argument.
// The values travel as a single JSON array parameter rather than one
// placeholder each: SQLite allows at most 32,766 variables in a statement
// (a tasks.get_all naming 33,000 ids failed with "too many SQL variables"),
// and one statement text for every list length keeps the prepared-statement
// cache useful.
func (t *sqlTx) inList(col string, vals []string) (string, any, error) {
	b, err := json.Marshal(vals)
	if err != nil {
		return "", nil, fmt.Errorf("encoding %s list: %w", col, err)
	}
	if t.s.dialect == "postgres" {
		return col + " IN (SELECT json_array_elements_text(?::json))", string(b), nil
	}
	return col + " IN (SELECT value FROM json_each(?))", string(b), nil
}
