package agent

import (
	"log/slog"
	"sync"
	"time"
)

// problems keeps a daemon quiet while the same thing keeps failing (the
// server is down, a queue is gone): the first failure is one line, then one
// line every repeatEvery while it lasts, and one when it is over.
type problems struct {
	mu    sync.Mutex
	since map[string]problem
	now   func() time.Time // nil: time.Now
}

type problem struct {
	first, said time.Time
	count       int
}

// repeatEvery is how often a lasting problem is said again.
const repeatEvery = 5 * time.Minute

func (p *problems) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// report records a failure of what (a fixed message) and logs it when it
// is new or has lasted another repeatEvery.
func (p *problems) report(log *slog.Logger, what string, err error, attrs ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.since == nil {
		p.since = map[string]problem{}
	}
	now := p.clock()
	pr, seen := p.since[what]
	pr.count++
	switch {
	case !seen:
		pr.first, pr.said = now, now
		log.Warn(what+" (retrying quietly)", append(attrs, "err", err)...)
	case now.Sub(pr.said) >= repeatEvery:
		pr.said = now
		log.Warn(what+" (still)", append(attrs, "err", err, "for", now.Sub(pr.first).Round(time.Second), "failures", pr.count)...)
	}
	p.since[what] = pr
}

// clear ends a problem, saying so when it had been reported.
func (p *problems) clear(log *slog.Logger, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.since[what]
	if !ok {
		return
	}
	delete(p.since, what)
	log.Info(what+": works again", "after", p.clock().Sub(pr.first).Round(time.Second), "failures", pr.count)
}
