package logstream

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"
)

// Write takes the child's combined stdout and stderr. Complete lines are
// cleaned (invalid UTF-8 replaced, "\r" handled, backspaces removed, lines
// that are only "\x1b[0m" dropped, secrets masked) and added to the message
// being assembled; a partial last line waits for its "\n", for Close, or
// for FlushInterval without new output (a prompt, a progress bar). Write
// only touches memory and the local spool, never the network. It fails
// only after Close.
func (st *Streamer) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return 0, ErrClosed
	}
	st.partialAt = st.cfg.Now()
	data := p
	pos := st.src // source offset of data[0]
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		if len(st.partial) > 0 {
			line = append(st.partial, line...)
		}
		st.sealSrc = st.partialSrc // a seal now covers the lines before this one
		st.addLine(line)
		pos += int64(i + 1)
		st.partialSrc, st.sealSrc = pos, pos
		st.partial = st.partial[:0]
		data = data[i+1:]
	}
	st.src += int64(len(p))
	// Only a new "\r", or an old one ending the partial line, can change
	// what a suppressed progress line keeps.
	cr := bytes.IndexByte(data, '\r') >= 0 || len(st.partial) > 0 && st.partial[len(st.partial)-1] == '\r'
	st.partial = append(st.partial, data...)
	st.compactPartial(cr)
	return len(p), nil
}

// Log adds an agent notice (for example "Process completed successfully")
// as its own event at level, after all output written before it. A partial
// output line is completed first so that it stays before the notice.
func (st *Streamer) Log(level, msg string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		// The text may hold secrets: the operator log gets its size only.
		st.cfg.Logger.Warn("task log notice after Close not sent", "task", st.cfg.TaskID, "bytes", len(msg))
		return
	}
	st.flushPartial()
	st.seal()
	text := maskSecrets(strings.ToValidUTF8(msg, "\uFFFD"), st.secrets)
	for {
		n := cutUTF8String(text, st.cfg.MaxEventBytes)
		st.appendEvent(level, text[:n])
		text = text[n:]
		if text == "" {
			return
		}
	}
}

// addLine adds one complete raw line, without its "\n".
func (st *Streamer) addLine(raw []byte) {
	text := st.clean(raw)
	if text == "\x1b[0m" {
		return // upstream skips terminal resets that stand alone
	}
	st.addText(maskSecrets(text, st.secrets) + "\n")
}

// clean applies upstream's per-line rules to raw output.
func (st *Streamer) clean(raw []byte) string {
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	if strings.Contains(s, "\r") {
		if st.cfg.SuppressCarriageReturn {
			s = lastNonEmpty(s)
		} else {
			s = strings.ReplaceAll(s, "\r", "\n")
		}
	}
	return strings.ReplaceAll(s, "\x08", "")
}

// lastNonEmpty returns the last non-empty "\r"-separated segment of s.
func lastNonEmpty(s string) string {
	for s != "" {
		i := strings.LastIndexByte(s, '\r')
		if seg := s[i+1:]; seg != "" {
			return seg
		}
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return ""
}

// addText appends cleaned text to the message being assembled. Lines are
// kept whole when they fit into a message; a longer one is split.
func (st *Streamer) addText(s string) {
	limit := st.cfg.MaxEventBytes
	if len(st.msg) > 0 && len(st.msg)+len(s) > limit {
		st.seal()
	}
	for len(s) > limit {
		n := cutUTF8String(s, limit)
		st.appendEvent(st.cfg.Level, s[:n])
		s = s[n:]
	}
	st.msg = append(st.msg, s...)
}

// compactPartial bounds the partial line. With SuppressCarriageReturn only
// the last non-empty "\r" segment can survive, so the rest goes now (a
// progress bar redrawn for hours without "\n" stays small). A partial line
// longer than a message is cut: the head is masked and sent on, keeping
// back enough bytes that a secret split between writes is still masked
// whole when the rest arrives.
func (st *Streamer) compactPartial(cr bool) {
	if p := st.partial; cr && st.cfg.SuppressCarriageReturn {
		if i := bytes.LastIndexByte(p, '\r'); i >= 0 {
			if i+1 == len(p) {
				// The current segment is empty: the last non-empty one may
				// still be the line's final text.
				keep := lastNonEmpty(string(p[:i]))
				st.partial = append(append(p[:0], keep...), '\r')
				return
			}
			st.partial = append(p[:0], p[i+1:]...)
		}
	}
	limit := st.cfg.MaxEventBytes + st.holdTail + utf8.UTFMax
	if len(st.partial) < limit {
		return
	}
	// Mask once, then cut pieces off the front: a secret that crosses a
	// cut lies wholly within p, so it is already masked.
	p := maskSecretsBytes(st.partial, st.secrets)
	start := 0
	for len(p)-start >= limit {
		n := cutUTF8(p[start:], st.cfg.MaxEventBytes)
		st.addText(maskSecrets(st.clean(p[start:start+n]), st.secrets))
		start += n
	}
	st.partial = append(st.partial[:0], p[start:]...)
}

// flushPartial completes a partial line.
func (st *Streamer) flushPartial() {
	if len(st.partial) > 0 {
		st.sealSrc = st.partialSrc
		st.addLine(st.partial)
		st.partial = st.partial[:0]
	}
	st.partialSrc, st.sealSrc = st.src, st.src
}

// seal turns the message being assembled into an event, recording with it
// how far into the source the spool now reaches.
func (st *Streamer) seal() {
	if len(st.msg) > 0 {
		st.appendEventAt(st.cfg.Level, string(st.msg), st.sealSrc)
		st.msg = st.msg[:0]
	}
}

// tick is the periodic flush (from Run): the assembled message becomes an
// event, and a partial line that has not grown for FlushInterval is sent as
// a line of its own.
func (st *Streamer) tick(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	if len(st.partial) > 0 && now.Sub(st.partialAt) >= st.cfg.FlushInterval {
		st.flushPartial()
	}
	st.seal()
}

// appendEvent encodes one event and appends it to the spool, dropping the
// oldest unsent events if the spool is now over its bound.
func (st *Streamer) appendEvent(level, msg string) { st.appendEventAt(level, msg, -1) }

// appendEventAt is appendEvent; with src >= 0 (and TrackSource) a source
// mark goes with the event, in the same write.
func (st *Streamer) appendEventAt(level, msg string, src int64) {
	now := st.cfg.Now()
	ts := nextTimestamp(now, st.lastTS)
	line := st.enc.encode(level, msg, ts)
	if st.sp.needRoll(len(line)) {
		st.roll()
		ts = nextTimestamp(now, st.lastTS)
		line = st.enc.encode(level, msg, ts)
	}
	st.lastTS = ts
	if st.cfg.TrackSource && src >= 0 && src > st.lastMark {
		line = appendMark(append([]byte(nil), line...), src)
		st.lastMark = src
	}
	if st.stats.SpoolError == "" {
		if err := st.sp.write(line); err != nil {
			// The disk refused: from now on the events go from memory
			// (after what the spool holds), so the order stays.
			st.cfg.Logger.Error("task log spool write failed; sending the task log from memory", "task", st.cfg.TaskID, "err", err)
			st.stats.SpoolError = err.Error()
		}
	}
	if st.stats.SpoolError != "" {
		st.memAppend(line)
		st.signal()
		return
	}
	if events, lines := st.sp.trim(); events > 0 || lines > 0 {
		if st.stats.Dropped == 0 {
			st.cfg.Logger.Warn("task log spool full; dropping the oldest unsent output",
				"task", st.cfg.TaskID, "max_spool_bytes", st.sp.max)
		}
		st.stats.Dropped += events
		st.noticeLines += lines
	}
	st.signal()
}

// roll starts a new spool segment and skips one timestamp, so that the
// segment's first event always has a free millisecond before it: if the
// segments before it are dropped, the notice saying so takes that slot.
func (st *Streamer) roll() {
	if err := st.sp.roll(); err != nil {
		st.cfg.Logger.Warn("task log spool: cannot start a new segment; appending to the current one", "err", err)
		return
	}
	st.lastTS++
	// The newest segment always holds the last mark: older ones may be
	// deleted once delivered.
	if st.cfg.TrackSource && st.lastMark >= 0 {
		if err := st.sp.write(appendMark(nil, st.lastMark)); err != nil {
			st.cfg.Logger.Warn("task log spool: writing the source mark", "err", err)
		}
	}
}

// signal wakes Run without blocking.
func (st *Streamer) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// cutUTF8String is cutUTF8 for a string.
func cutUTF8String(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return max(n, 1)
}

// maxMemoryBytes bounds the memory queue (or MaxSpoolBytes if smaller).
const maxMemoryBytes = 64 << 20

// memAppend queues an event in memory (its source mark, if any, is not
// kept: without a spool there is nothing to resume from). Beyond the
// bound the oldest queued events that are not in flight are dropped and
// counted, as the spool does.
func (st *Streamer) memAppend(line []byte) {
	ev := line
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		ev = line[:i]
	}
	if isMark(ev) {
		return
	}
	st.memQ = append(st.memQ, append([]byte(nil), ev...))
	st.memBytes += int64(len(ev))
	limit := min(st.cfg.MaxSpoolBytes, maxMemoryBytes)
	keep := 0
	if b := st.sp.inflight; b != nil && b.mem {
		keep = int(b.events)
	}
	for st.memBytes > limit && len(st.memQ) > keep+1 {
		old := st.memQ[keep]
		st.memQ = append(st.memQ[:keep], st.memQ[keep+1:]...)
		st.memBytes -= int64(len(old))
		st.stats.Dropped++
		st.noticeLines += linesIn(old)
	}
}
