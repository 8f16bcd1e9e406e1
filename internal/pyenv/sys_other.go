//go:build !unix

package pyenv

import (
	"math"
	"os/exec"
	"sync"
)

// Without flock(2) the locks only exclude each other inside this process.
var (
	locksMu sync.Mutex
	locks   = map[string]int{} // path -> -1 exclusive, n > 0 shared holders
)

type fileLock struct {
	path string
	excl bool
	done bool
}

func tryLock(path string, exclusive bool) (*fileLock, bool, error) {
	locksMu.Lock()
	defer locksMu.Unlock()
	n := locks[path]
	if n < 0 || (exclusive && n > 0) {
		return nil, false, nil
	}
	if exclusive {
		locks[path] = -1
	} else {
		locks[path] = n + 1
	}
	return &fileLock{path: path, excl: exclusive}, true, nil
}

func (l *fileLock) unlock() {
	locksMu.Lock()
	defer locksMu.Unlock()
	if l == nil || l.done {
		return
	}
	l.done = true
	if l.excl || locks[l.path] <= 1 {
		delete(locks, l.path)
	} else {
		locks[l.path]--
	}
}

func freeBytes(string) (int64, error) { return math.MaxInt64, nil }

func setProcGroup(*exec.Cmd) {}
