package logstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// runExitGrace bounds how long Close waits for Run to notice that it gave
// up. A Sender that honours its context returns at once.
const runExitGrace = 5 * time.Second

// Close ends the stream: it completes a partial line, turns the message
// being assembled into an event, and waits until Run has delivered
// everything spooled, or ctx ends. Callers should pass a context the task's
// cancellation cannot reach (context.WithoutCancel plus a timeout), so that
// an aborted task still gets its last lines out.
//
// On success the spool is removed. If ctx ends first, Close stops Run, keeps
// the spool directory (SpoolPath) for Recover, and returns an error saying
// how many events are undelivered. Write fails after Close.
func (st *Streamer) Close(ctx context.Context) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	st.flushPartial()
	st.seal()
	st.closed = true
	if st.pending() == 0 && st.noticeLines == 0 {
		st.markDrained()
	}
	st.signal()
	st.mu.Unlock()

	select {
	case <-st.drained:
	case <-ctx.Done():
	}

	st.mu.Lock()
	if st.drainedOnce {
		done, running := st.runDone, st.running
		st.mu.Unlock()
		if running {
			waitOrTimeout(done, runExitGrace)
		}
		st.mu.Lock()
		st.sp.close()
		st.mu.Unlock()
		st.closeOffset()
		activeDirs.Delete(absPath(st.sp.dir))
		if err := os.RemoveAll(st.sp.dir); err != nil {
			st.cfg.Logger.Warn("removing delivered task log spool", "dir", st.sp.dir, "err", err)
		}
		return nil
	}
	// Give up: stop Run and leave a consistent spool for Recover.
	st.aborted = true
	if st.cancelSend != nil {
		st.cancelSend()
	}
	pending := st.pending()
	st.sp.close()
	done, running := st.runDone, st.running
	st.mu.Unlock()
	if running {
		waitOrTimeout(done, runExitGrace)
	}
	st.mu.Lock()
	inDoubt := st.inDoubt
	st.mu.Unlock()
	if !inDoubt {
		st.saveOffset(true) // else the intent stays, for Recover to check
	}
	st.closeOffset()
	activeDirs.Delete(absPath(st.sp.dir))
	return fmt.Errorf("logstream: %d task log events undelivered, kept in %s for Recover: %w",
		pending, st.sp.dir, context.Cause(ctx))
}

// closeOffset closes the offset file; a write after it (a Run that
// outlived the grace) opens it for that write only.
func (st *Streamer) closeOffset() {
	st.offsetMu.Lock()
	st.offW.close()
	st.offsetMu.Unlock()
}

func waitOrTimeout(done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Recover delivers what earlier Streamers left in spoolDir (Close gave up,
// or the daemon crashed) and removes each spool once it is delivered.
// Spools of live Streamers in this process are left alone; Recover must
// not run at the same time as another process's Streamers on spoolDir.
// A failing send is retried with DefaultBackoff until ctx ends; a batch the
// server refuses outright (for example, the task was deleted) is skipped.
// It returns how many events the server added.
func Recover(ctx context.Context, spoolDir string, s Sender, log *slog.Logger) (sent int, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(spoolDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("logstream: reading spool directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), streamPrefix) {
			continue
		}
		dir := filepath.Join(spoolDir, e.Name())
		if _, live := activeDirs.Load(absPath(dir)); live {
			continue
		}
		n, err := recoverStream(ctx, dir, s, log)
		sent += n
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return sent, errors.Join(errs...)
}

// recoverStream sends one spool from its recorded offset, recording
// progress as it goes so that an interrupted Recover resumes.
func recoverStream(ctx context.Context, dir string, s Sender, log *slog.Logger) (sent int, err error) {
	seqs, err := listSegments(dir)
	if err != nil {
		return 0, fmt.Errorf("logstream: recovering %s: %w", dir, err)
	}
	atSeq, atOff := readOffset(dir)
	w := &offsetWriter{dir: dir}
	defer w.close()
	for _, seq := range seqs {
		path := segmentPath(dir, seq)
		if seq < atSeq {
			os.Remove(path) // delivered before the crash
			continue
		}
		off := int64(0)
		if seq == atSeq {
			off = atOff
			if start, end, ok := readIntent(dir); ok && start == atOff {
				off = skipDelivered(ctx, dir, seq, start, end, s, log)
			}
		}
		n, err := recoverSegment(ctx, dir, seq, off, w, s, log)
		sent += n
		if err != nil {
			return sent, fmt.Errorf("logstream: recovering %s: %w", dir, err)
		}
		if err := os.Remove(path); err != nil {
			return sent, fmt.Errorf("logstream: recovering %s: %w", dir, err)
		}
	}
	w.close()
	if err := os.RemoveAll(dir); err != nil {
		return sent, fmt.Errorf("logstream: removing recovered spool: %w", err)
	}
	log.Info("recovered task log spool", "dir", dir, "events", sent)
	return sent, nil
}

func recoverSegment(ctx context.Context, dir string, seq, off int64, w *offsetWriter, s Sender, log *slog.Logger) (sent int, err error) {
	f, err := os.Open(segmentPath(dir, seq))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	for off = min(off, size); off < size; {
		lines, n, err := readLines(f, off, size-off, DefaultMaxBatchBytes)
		lines = withoutMarks(lines)
		if errors.Is(err, errTorn) {
			log.Warn("skipping a torn event in a task log spool", "dir", dir)
		} else if err != nil {
			return sent, err
		}
		if len(lines) > 0 {
			added, err := deliver(ctx, s, lines, DefaultBackoff, log, nil)
			if err != nil && !permanent(err) {
				return sent, err
			}
			if err != nil {
				log.Warn("recovered task log batch refused by the server; skipping it", "dir", dir, "events", len(lines), "err", err)
			} else if added < len(lines) {
				log.Warn("server added only part of a recovered task log batch", "dir", dir, "added", added, "sent", len(lines))
			}
			sent += min(added, len(lines))
		}
		off += n
		if err := w.put(offsetRecord(seq, off)); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// DeliveryChecker is an optional Sender extension: whether the server has
// a task log event, by its encoded line. Recover uses it for the one batch
// that may have been delivered just before a crash, so that no event is
// delivered twice.
type DeliveryChecker interface {
	Delivered(ctx context.Context, line []byte) (bool, error)
}

// skipDelivered returns where Recover starts in the segment: after the
// in-flight batch [start, end) if the server has its first event, else at
// start (sent again: the server did not get it, or cannot tell).
func skipDelivered(ctx context.Context, dir string, seq, start, end int64, s Sender, log *slog.Logger) int64 {
	dc, ok := s.(DeliveryChecker)
	if !ok {
		return start
	}
	f, err := os.Open(segmentPath(dir, seq))
	if err != nil {
		return start
	}
	defer f.Close()
	lines, _, err := readLines(f, start, end-start, int(end-start))
	lines = withoutMarks(lines)
	if err != nil || len(lines) == 0 {
		return start
	}
	got, err := dc.Delivered(ctx, lines[0])
	if err != nil {
		log.Warn("could not tell whether the last task log batch before a crash arrived; sending it again", "dir", dir, "err", err)
		return start
	}
	if got {
		log.Info("the last task log batch before a crash had arrived; not sending it again", "dir", dir, "events", len(lines))
		return end
	}
	return start
}
