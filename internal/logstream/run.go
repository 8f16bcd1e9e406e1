package logstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Run is the sender loop. It reads the spool in order and calls
// Sender.AddEvents in batches, retrying a failed batch with backoff for as
// long as ctx lives; a batch the server refuses outright (a 4xx other than
// 401, 408, 429) is logged, counted in FailedSends and skipped. It also
// drives the FlushInterval flush of the output being assembled.
//
// Run returns nil once Close has delivered everything (or given up), and
// ctx's error when ctx ends first; what was not delivered stays in the
// spool. Only one Run may be active at a time.
func (st *Streamer) Run(ctx context.Context) error {
	st.mu.Lock()
	if st.running {
		st.mu.Unlock()
		return errors.New("logstream: Run is already running")
	}
	// sendCtx lets Close abort a send in flight without owning ctx.
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	st.running, st.cancelSend, st.runDone = true, cancel, done
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.running, st.cancelSend = false, nil
		if !st.aborted {
			st.sp.inflight = nil // not delivered: it is read again next time
		}
		// A send cut off by ctx may have arrived: keep its intent for
		// Recover to check.
		save := !st.drainedOnce && !st.inDoubt
		st.mu.Unlock()
		if save {
			st.saveOffset(true) // so that Recover does not resend what was delivered
		}
		close(done)
	}()

	ticker := time.NewTicker(st.cfg.FlushInterval)
	defer ticker.Stop()
	var r segmentReader
	defer r.close()
	for {
		select {
		case <-ticker.C:
			st.tick(st.cfg.Now())
		default:
		}
		b, finished, err := st.next(&r)
		if finished {
			return nil
		}
		if err != nil {
			st.cfg.Logger.Error("reading task log spool", "task", st.cfg.TaskID, "err", err)
		}
		if b == nil {
			select {
			case <-sendCtx.Done():
				return ctx.Err() // nil when Close aborted the loop
			case <-st.wake:
			case <-ticker.C:
				st.tick(st.cfg.Now())
				st.saveOffset(false)
			}
			continue
		}
		// Say what is in flight first: if the daemon dies before the
		// answer is recorded, Recover asks the server whether it arrived.
		st.saveIntent(b)
		added, err := deliver(sendCtx, st.sender, b.data, st.cfg.RetryBackoff, st.cfg.Logger, st.countRetry)
		if err != nil && !permanent(err) {
			return ctx.Err()
		}
		st.finish(b, added, err)
		st.mu.Lock()
		st.inDoubt = false
		st.mu.Unlock()
		st.saveOffset(true)
	}
}

// next returns the next batch to send, or nil when there is none now.
// finished is true when the loop should end: Close drained the spool or
// gave up on it.
func (st *Streamer) next(r *segmentReader) (b *batch, finished bool, err error) {
	for {
		st.mu.Lock()
		if st.aborted || st.drainedOnce {
			st.mu.Unlock()
			return nil, true, nil
		}
		for len(st.sp.segs) > 1 && st.sp.ackOff == st.sp.head().size {
			st.sp.dropHead() // fully delivered; normally ack already did this
		}
		h, off := st.sp.head(), st.sp.ackOff
		avail, notice := h.size-off, st.noticeLines
		if avail == 0 && len(st.memQ) > 0 {
			// The spool is delivered: the memory queue is next.
			b = st.memBatch()
			st.mu.Unlock()
			return b, false, nil
		}
		st.mu.Unlock()
		if avail == 0 && notice == 0 {
			return nil, false, nil
		}

		// Read outside the lock: the bytes below h.size are written, and a
		// segment dropped meanwhile stays readable through an open file.
		var lines [][]byte
		var n int64
		if avail > 0 {
			f, err := r.open(st.sp.dir, h.seq)
			if err != nil {
				if os.IsNotExist(err) {
					continue // dropped since: start again at the new head
				}
				return nil, false, err
			}
			room := st.cfg.MaxBatchBytes
			if notice > 0 {
				// Leave space for the notice event.
				room -= 200 + len(st.cfg.TaskID) + len(st.cfg.Worker)
			}
			lines, n, err = readLines(f, off, avail, room)
			lines = withoutMarks(lines)
			if errors.Is(err, errTorn) {
				st.cfg.Logger.Warn("skipping a torn event in the task log spool", "task", st.cfg.TaskID)
			} else if err != nil {
				return nil, false, err
			}
		}

		st.mu.Lock()
		if st.sp.head() != h || st.sp.ackOff != off {
			st.mu.Unlock()
			continue // the head was dropped while we read
		}
		b = &batch{seq: h.seq, start: off, end: off + n, events: int64(len(lines)), data: lines}
		for _, l := range lines {
			b.lines += linesIn(l)
		}
		if notice > 0 {
			st.prependNotice(b, notice)
		}
		st.sp.inflight = b
		st.mu.Unlock()
		if len(b.data) == 0 {
			// Only a torn tail: step over it without calling the server.
			st.finish(b, 0, nil)
			continue
		}
		return b, false, nil
	}
}

// memBatch takes the first events of the memory queue (up to a batch),
// with the dropped-lines notice if there is one. Called with mu held.
func (st *Streamer) memBatch() *batch {
	size, n := 0, 0
	for n < len(st.memQ) && (n == 0 || size+len(st.memQ[n])+1 <= st.cfg.MaxBatchBytes) {
		size += len(st.memQ[n]) + 1
		n++
	}
	b := &batch{mem: true, events: int64(n), data: append([][]byte(nil), st.memQ[:n]...)}
	for _, l := range b.data {
		b.lines += linesIn(l)
	}
	if st.noticeLines > 0 {
		st.prependNotice(b, st.noticeLines)
	}
	st.sp.inflight = b
	return b
}

// prependNotice puts the "lines dropped" notice before the batch's events,
// in the millisecond that roll kept free before them.
func (st *Streamer) prependNotice(b *batch, lines int64) {
	ts := st.lastTS + 1
	if len(b.data) > 0 {
		if first, ok := timestampOf(b.data[0]); ok {
			ts = first - 1
		}
	}
	st.lastTS = max(st.lastTS, ts)
	msg := fmt.Sprintf("[clearml-agent] %d log lines dropped: spool full\n", lines)
	line := append([]byte(nil), st.enc.encode("WARNING", msg, ts)...)
	b.data = append([][]byte{line[:len(line)-1]}, b.data...)
	b.notice = lines
}

// finish records the outcome of a batch: delivered (added events), or
// refused for good (err).
func (st *Streamer) finish(b *batch, added int, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.aborted {
		return // the spool is Recover's now; leave it as it is
	}
	st.sp.inflight = nil
	n := int64(len(b.data))
	switch {
	case err != nil:
		st.stats.FailedSends++
		st.stats.Rejected += b.events
		st.cfg.Logger.Warn("task log batch refused by the server; skipping it",
			"task", st.cfg.TaskID, "events", n, "err", err)
	default:
		accepted := min(max(int64(added), 0), n)
		if accepted < n {
			// Upstream prints "Error (<errors>) sending events only <a> of <n>
			// registered" and moves on: the server skipped invalid events
			// and sending them again would not help.
			st.cfg.Logger.Warn("server added only part of a task log batch",
				"task", st.cfg.TaskID, "added", accepted, "sent", n)
		}
		delivered := min(accepted, b.events)
		st.stats.Sent += delivered
		st.stats.Rejected += b.events - delivered
	}
	if b.notice > 0 {
		st.noticeLines = max(st.noticeLines-b.notice, 0)
	}
	if b.mem {
		for _, l := range st.memQ[:b.events] {
			st.memBytes -= int64(len(l))
		}
		st.memQ = append(st.memQ[:0], st.memQ[b.events:]...)
		if st.closed && st.pending() == 0 && st.noticeLines == 0 {
			st.markDrained()
		}
		return
	}
	rolled, rerr := st.sp.ack(b)
	if rolled {
		st.lastTS++ // see Streamer.roll
	}
	if rerr != nil {
		st.cfg.Logger.Warn("task log spool", "task", st.cfg.TaskID, "err", rerr)
	}
	if st.closed && st.pending() == 0 && st.noticeLines == 0 {
		st.markDrained()
	}
}

// saveOffset records the delivery position for Recover, at most once per
// FlushInterval unless forced. Positions only move forward.
func (st *Streamer) saveOffset(force bool) {
	st.mu.Lock()
	seq, off := st.sp.position()
	skip := st.aborted && !force
	st.mu.Unlock()
	if skip {
		return
	}
	st.offsetMu.Lock()
	defer st.offsetMu.Unlock()
	saved := st.offsetSaved
	if seq < saved[0] || seq == saved[0] && off <= saved[1] {
		return
	}
	if !force && time.Since(st.offsetAt) < st.cfg.FlushInterval {
		return
	}
	if err := st.offW.put(offsetRecord(seq, off)); err != nil {
		st.cfg.Logger.Warn("task log spool", "task", st.cfg.TaskID, "err", err)
		return
	}
	st.offsetSaved, st.offsetAt = [2]int64{seq, off}, time.Now()
}

// saveIntent records the batch about to be sent (with the delivery
// position), unless it carries a notice (not in the spool, so Recover
// cannot look for it).
func (st *Streamer) saveIntent(b *batch) {
	if b.notice > 0 || len(b.data) == 0 || b.orphan || b.mem {
		return
	}
	st.mu.Lock()
	st.inDoubt = true
	st.mu.Unlock()
	st.offsetMu.Lock()
	defer st.offsetMu.Unlock()
	if err := st.offW.put(intentRecord(b.seq, b.start, b.end)); err != nil {
		st.cfg.Logger.Warn("task log spool", "task", st.cfg.TaskID, "err", err)
	}
	st.offsetSaved = [2]int64{b.seq, b.start - 1} // the next saveOffset rewrites the file
}

func (st *Streamer) countRetry() {
	st.mu.Lock()
	st.stats.Retries++
	st.mu.Unlock()
}

// markDrained tells Close that everything was delivered. Called with mu held.
func (st *Streamer) markDrained() {
	if !st.drainedOnce {
		st.drainedOnce = true
		close(st.drained)
		st.signal()
	}
}

// deliver sends lines until the server answers, the error is permanent,
// or ctx ends. It returns the added count, or the permanent or ctx error.
func deliver(ctx context.Context, s Sender, lines [][]byte, backoff func(int) time.Duration,
	log *slog.Logger, onRetry func()) (int, error) {
	for attempt := 0; ; attempt++ {
		added, err := s.AddEvents(ctx, lines)
		if err == nil {
			if attempt > 0 {
				log.Info("task log delivery resumed", "failed_attempts", attempt)
			}
			return added, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if permanent(err) {
			return 0, err
		}
		if onRetry != nil {
			onRetry()
		}
		wait := backoff(attempt)
		// The first failure and then every tenth: an outage of minutes
		// should not flood the operator log.
		if attempt%10 == 0 {
			log.Warn("sending task log failed; will retry", "attempt", attempt+1, "retry_in", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// segmentReader keeps the head segment open across batches.
type segmentReader struct {
	seq int64
	f   *os.File
}

func (r *segmentReader) open(dir string, seq int64) (*os.File, error) {
	if r.f != nil && r.seq == seq {
		return r.f, nil
	}
	r.close()
	f, err := os.Open(segmentPath(dir, seq))
	if err != nil {
		return nil, err
	}
	r.f, r.seq = f, seq
	return f, nil
}

func (r *segmentReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
