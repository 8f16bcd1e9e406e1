// Package logstream ships a task's console output to the server as log
// events (events.add_batch), in order, without losing lines while the
// server is unreachable.
//
// A Streamer has two sides. The writing side (Write, Log) turns the child's
// combined stdout/stderr into events the way upstream's daemon does
// (spec "Log streaming format"): it splits the output on "\n", handles "\r"
// and backspaces, masks secrets, concatenates lines into messages of at most
// MaxEventBytes and appends each message, as one JSON line, to an on-disk
// spool. It never touches the network, so a stalled server never stalls the
// task. The sending side (Run) reads the spool in order and delivers it in
// batches of at most MaxBatchBytes, retrying with backoff for as long as its
// context lives.
//
// The spool is bounded (MaxSpoolBytes). When it is full the oldest unsent
// events are dropped, counted, and replaced by one notice event once
// delivery resumes. Close waits for delivery; if it gives up, the spool is
// kept on disk and Recover delivers it later, for example after the daemon
// restarts. Delivery is at least once: a batch whose answer was lost may be
// sent again.
package logstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// Sender delivers a batch of JSON-lines events (each line one event object,
// without a trailing newline). It returns how many the server added. It
// must not keep lines after it returns. An *api.Error in the chain with a
// 4xx code other than 401, 408 and 429 marks the batch as not retryable.
type Sender interface {
	AddEvents(ctx context.Context, lines [][]byte) (added int, err error)
}

// Defaults for the zero values of Config.
const (
	DefaultMaxSpoolBytes = 512 << 20
	DefaultFlushInterval = time.Second
	DefaultMaxEventBytes = 64 << 10
	DefaultMaxBatchBytes = 1 << 20
	DefaultLevel         = "DEBUG"
)

// Config configures a Streamer. Zero values take the defaults.
type Config struct {
	TaskID, Worker string
	// SpoolDir holds the on-disk spool (created if missing); required. Each
	// Streamer works in its own subdirectory.
	SpoolDir string
	// MaxSpoolBytes bounds the spooled, unsent bytes (512 MiB). Beyond it
	// the oldest unsent events are dropped and counted.
	MaxSpoolBytes int64
	// FlushInterval is the longest output waits before it is sent (1 s).
	FlushInterval time.Duration
	// MaxEventBytes is the largest message of one event (64 KiB).
	MaxEventBytes int
	// MaxBatchBytes is the largest request body (1 MiB).
	MaxBatchBytes int
	// Secrets are masked as "********" in every message.
	Secrets []string
	// SuppressCarriageReturn keeps only the last non-empty "\r"-separated
	// segment of a line; false turns each "\r" into "\n". Upstream's
	// default is true; callers set it from agent.suppress_carriage_return.
	SuppressCarriageReturn bool
	// Level is the level of streamed process output ("DEBUG").
	Level string
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger is the operator log, never the task log.
	Logger *slog.Logger
	// RetryBackoff is the wait after failed attempt number attempt (from 0);
	// by default exponential from 0.5 s to 30 s with jitter.
	RetryBackoff func(attempt int) time.Duration
	// TrackSource records in the spool how far into the output (a file
	// the task writes) the spooled events reach, so that after a crash
	// ResumePoint tells where to read on: every complete line is spooled
	// exactly once. SourceOffset is where this Streamer's output starts in
	// that file.
	TrackSource  bool
	SourceOffset int64
	// MinTimestamp: events get later timestamps than this (a resumed
	// task's earlier events).
	MinTimestamp int64
}

func (c *Config) setDefaults() {
	if c.MaxSpoolBytes <= 0 {
		c.MaxSpoolBytes = DefaultMaxSpoolBytes
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	// A message needs room for at least one multi-byte character.
	c.MaxEventBytes = max(c.MaxEventBytes, 8)
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Level == "" {
		c.Level = DefaultLevel
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RetryBackoff == nil {
		c.RetryBackoff = DefaultBackoff
	}
}

// DefaultBackoff doubles from 0.5 s up to 30 s and waits a random time
// between half and all of that, so that agents that lost the server
// together do not retry in step.
func DefaultBackoff(attempt int) time.Duration {
	d := 30 * time.Second
	if attempt < 6 {
		d = min(d, 500*time.Millisecond<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// Stats counts events. Pending are spooled and not yet delivered; the
// message being assembled and a partial line are not counted.
type Stats struct {
	Sent    int64 // accepted by the server (drop notices not counted)
	Pending int64 // in the spool, not yet delivered
	Dropped int64 // removed unsent because the spool was full
	// Rejected are events the server did not add: skipped by a partial
	// accept or in a batch that failed with a non-retryable error.
	Rejected int64
	// FailedSends counts batches given up on (non-retryable errors).
	FailedSends int64
	// SpoolError is why the disk spool could not be used ("" when it
	// could): events then went from memory straight to the server, and
	// an outage longer than the memory bound loses the oldest.
	SpoolError string
	// Retries counts failed attempts that were retried.
	Retries int64
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("logstream: streamer closed")

// Streamer turns output into log events and delivers them. Write and Log
// may be called from any goroutine; Run is one goroutine owned by the
// caller; Close ends the stream. All state is guarded by mu, which is never
// held across a network call.
type Streamer struct {
	cfg      Config
	sender   Sender
	secrets  []string // longest first, so a secret containing another is masked whole
	holdTail int      // bytes of a partial line kept back when a long line is cut

	mu sync.Mutex
	// Writing side.
	partial   []byte    // incomplete last line, raw
	partialAt time.Time // when partial last grew
	msg       []byte    // message being assembled from complete lines
	lastTS    int64     // last event timestamp (ms)
	// Source positions (TrackSource): src is the end of what Write took,
	// partialSrc where the partial line starts, sealSrc how far the
	// message being assembled reaches; lastMark the last recorded mark.
	src, partialSrc, sealSrc, lastMark int64
	enc                                encoder
	writeErr                           error // last spool write failure, logged once
	// Spool and delivery state.
	sp    *spool
	stats Stats
	// noticeLines are dropped lines not yet reported by a notice event.
	noticeLines int64
	running     bool
	closed      bool
	aborted     bool // Close gave up; the spool belongs to Recover now
	cancelSend  context.CancelFunc
	drainedOnce bool
	inDoubt     bool // a batch was sent and its answer not recorded yet
	// Memory queue: events that the disk spool could not take, sent
	// after everything spooled before them (see memAppend).
	memQ     [][]byte
	memBytes int64

	// offsetMu serialises offset file writes, which happen outside mu.
	offsetMu    sync.Mutex
	offW        offsetWriter
	offsetSaved [2]int64 // segment and byte offset last written
	offsetAt    time.Time

	wake    chan struct{} // Run: something to send, or closing
	drained chan struct{} // closed when closed and nothing is pending
	runDone chan struct{} // closed when Run returns
}

// New creates a Streamer and its spool directory under cfg.SpoolDir.
func New(cfg Config, s Sender) (*Streamer, error) {
	if s == nil {
		return nil, errors.New("logstream: nil Sender")
	}
	cfg.setDefaults()
	st := &Streamer{cfg: cfg, sender: s, wake: make(chan struct{}, 1), drained: make(chan struct{}), lastTS: cfg.MinTimestamp}
	st.src, st.partialSrc, st.sealSrc, st.lastMark = cfg.SourceOffset, cfg.SourceOffset, cfg.SourceOffset, -1
	for _, sec := range cfg.Secrets {
		if sec != "" {
			st.secrets = append(st.secrets, sec)
			st.holdTail = max(st.holdTail, len(sec)-1)
		}
	}
	sortLongestFirst(st.secrets)
	st.enc.init(cfg.TaskID, cfg.Worker)
	sp, err := openSpool(cfg)
	if err != nil {
		// The output still goes to the server, straight from memory.
		cfg.Logger.Error("task log spool unusable; sending the task log from memory", "task", cfg.TaskID, "err", err)
		st.sp, st.stats.SpoolError = memorySpool(cfg.MaxSpoolBytes), err.Error()
		return st, nil
	}
	st.sp, st.offW.dir = sp, sp.dir
	activeDirs.Store(absPath(sp.dir), true)
	if cfg.TrackSource && cfg.SourceOffset > 0 {
		// A resumed log: the spool says where it resumes before any line
		// is written, so that a crash now does not start the log over.
		if err := sp.write(appendMark(nil, cfg.SourceOffset)); err != nil {
			cfg.Logger.Warn("task log spool: writing the resume mark", "task", cfg.TaskID, "err", err)
		} else {
			st.lastMark = cfg.SourceOffset
		}
	}
	return st, nil
}

func openSpool(cfg Config) (*spool, error) {
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("logstream: creating spool directory: %w", err)
	}
	dir, err := os.MkdirTemp(cfg.SpoolDir, streamDirName(cfg.TaskID, cfg.Now()))
	if err != nil {
		return nil, fmt.Errorf("logstream: creating spool: %w", err)
	}
	sp, err := newSpool(dir, cfg.MaxSpoolBytes)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return sp, nil
}

// pending counts undelivered events, in the spool and in memory.
func (st *Streamer) pending() int64 { return st.sp.pendingEvents() + int64(len(st.memQ)) }

// Stats returns the current counts.
func (st *Streamer) Stats() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stats
	s.Pending = st.pending()
	return s
}

// SpoolPath is the directory holding this Streamer's spool.
func (st *Streamer) SpoolPath() string { return st.sp.dir }

// activeDirs holds the spool directories of live Streamers in this process,
// which Recover must leave alone.
var activeDirs sync.Map

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// permanent reports whether err means the server refused the batch itself,
// so that sending it again cannot succeed.
func permanent(err error) bool {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case 401, 408, 429:
		return false
	}
	return ae.Code >= 400 && ae.Code < 500
}
