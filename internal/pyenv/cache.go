package pyenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	metaFile    = ".clearml-venv.json"        // written last: the entry is complete
	usedFile    = ".clearml-used"             // mtime = last use, for LRU
	reqFileName = ".clearml-requirements.txt" // the normalised requirements pip installed
	locksDir    = ".locks"
	seedDirName = ".seed-2"
	keyDirLen   = 16 // hex digits of the key naming an entry (64 bits)
)

// entry names the paths of one cache entry.
type entry struct {
	dir, build, lease string
}

func cacheEntry(root, key string) entry {
	name := key[:keyDirLen]
	locks := filepath.Join(root, locksDir)
	return entry{
		dir:   filepath.Join(root, name),
		build: filepath.Join(locks, name+".build"),
		lease: filepath.Join(locks, name+".lease"),
	}
}

// meta is the entry's metadata file.
type meta struct {
	Key          string    `json:"key"`
	Created      time.Time `json:"created"`
	Python       string    `json:"python"`
	Interpreter  string    `json:"interpreter"`
	Pip          string    `json:"pip"`
	Requirements []string  `json:"requirements"`
	Frozen       string    `json:"frozen"`
	BuildSeconds float64   `json:"build_seconds"`
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// writeMeta publishes an entry: write a temp file, then rename it.
func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("pyenv: cache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, metaFile)); err != nil {
		return fmt.Errorf("pyenv: cache: %w", err)
	}
	return nil
}

// touch sets path's mtime to now, creating it if needed.
func touch(path string) {
	now := time.Now()
	if err := os.Chtimes(path, now, now); errors.Is(err, fs.ErrNotExist) {
		os.WriteFile(path, nil, 0o644)
	}
}

// lockFile waits for a flock on path, polling so that ctx can cancel.
func lockFile(ctx context.Context, path string, exclusive bool) (*fileLock, error) {
	delay := 5 * time.Millisecond
	for {
		l, ok, err := tryLock(path, exclusive)
		if err != nil {
			return nil, fmt.Errorf("pyenv: lock %s: %w", path, err)
		}
		if ok {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pyenv: waiting for %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

type cached struct {
	name string
	used time.Time
}

// evict removes least recently used entries while there are more than
// o.MaxEntries-reserve of them or the disk is short of o.MinFreeBytes, and
// removes the remains of interrupted builds. Entries being built or leased
// are skipped: eviction only takes locks without waiting.
func evict(o Options, reserve int, logf func(string, ...any)) {
	root := o.CacheDir
	guard, ok, err := tryLock(filepath.Join(root, locksDir, "evict"), true)
	if err != nil || !ok {
		return // another evictor is at work
	}
	defer guard.unlock()
	des, err := os.ReadDir(root)
	if err != nil {
		return
	}
	var ready []cached
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() || len(name) != keyDirLen || name[0] == '.' {
			continue
		}
		dir := filepath.Join(root, name)
		st, err := os.Stat(filepath.Join(dir, usedFile))
		if err != nil {
			st, err = os.Stat(filepath.Join(dir, metaFile))
		}
		if err == nil {
			ready = append(ready, cached{name, st.ModTime()})
			continue
		}
		e := entry{dir: dir, build: filepath.Join(root, locksDir, name+".build")}
		if b, ok, _ := tryLock(e.build, true); ok { // incomplete and nobody builds it
			if _, err := os.Stat(filepath.Join(dir, metaFile)); err != nil {
				os.RemoveAll(dir)
				logf("removed incomplete cache entry %s", name)
			}
			b.unlock()
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].used.Before(ready[j].used) })
	limit := o.MaxEntries
	if limit <= 0 {
		limit = defaultMaxEntries
	}
	count := len(ready)
	for _, c := range ready {
		over := count+reserve > limit
		low := false
		if o.MinFreeBytes > 0 {
			if free, err := freeBytes(root); err == nil && free < o.MinFreeBytes {
				low = true
			}
		}
		if !over && !low {
			return
		}
		if removeEntry(root, c.name) {
			count--
			why := "max_entries"
			if !over {
				why = "free space"
			}
			logf("evicted cached environment %s (last used %s, %s)", c.name, c.used.Format(time.RFC3339), why)
		}
	}
}

// removeEntry deletes an entry unless it is being built or used.
func removeEntry(root, name string) bool {
	e := entry{dir: filepath.Join(root, name), build: filepath.Join(root, locksDir, name+".build"),
		lease: filepath.Join(root, locksDir, name+".lease")}
	b, ok, err := tryLock(e.build, true)
	if err != nil || !ok {
		return false
	}
	defer b.unlock()
	l, ok, err := tryLock(e.lease, true)
	if err != nil || !ok {
		return false
	}
	defer l.unlock()
	os.Remove(filepath.Join(e.dir, metaFile)) // unpublish first
	return os.RemoveAll(e.dir) == nil
}

// ensureSeed returns a venv made with ensurepip for this interpreter,
// creating it once; new venvs get their pip from it by hard links.
func (p *prep) ensureSeed(ctx context.Context, in *interpreter, root string) (string, error) {
	name := cacheKey(in, nil, nil, nil, "", false)[:keyDirLen]
	dir := filepath.Join(root, name)
	ready := filepath.Join(dir, ".clearml-seed-ready")
	if _, err := os.Stat(ready); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	l, err := lockFile(ctx, filepath.Join(root, name+".lock"), true)
	if err != nil {
		return "", err
	}
	defer l.unlock()
	if _, err := os.Stat(ready); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	t := time.Now()
	how := "from ensurepip's wheels"
	if err := p.seedFromWheels(ctx, in, dir); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		p.lg.Info("pip seed from ensurepip's wheels failed, running ensurepip", "err", err)
		how = "with ensurepip"
		os.RemoveAll(dir)
		if out, err := p.command(ctx, in.Path, "-m", "venv", dir).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("%v: %s", err, out)
		}
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return "", err
	}
	p.logf("pip seed venv %s created %s in %s (once per interpreter)", dir, how, secs(time.Since(t)))
	return dir, nil
}

// seedFromWheels makes the seed venv without running pip: a venv without
// pip, then the wheels ensurepip would install unpacked into it and
// byte-compiled on every core (ensurepip runs pip from a zip and compiles
// on one core: seconds). pip must then answer with ensurepip's version.
func (p *prep) seedFromWheels(ctx context.Context, in *interpreter, dir string) error {
	wheels, err := p.seedWheels(ctx, in)
	if err != nil {
		return err
	}
	if out, err := p.command(ctx, in.Path, "-m", "venv", "--without-pip", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	for _, w := range wheels {
		if err := installWheel(w, dir, in.Version); err != nil {
			return err
		}
	}
	site, err := sitePackages(dir)
	if err != nil {
		return err
	}
	py := venvPython(dir)
	if out, err := p.command(ctx, py, "-m", "compileall", "-q", "-j0", site).CombinedOutput(); err != nil {
		// As for pip, a file that does not compile is no failure.
		p.lg.Debug("byte-compiling the pip seed", "err", err, "output", string(out))
	}
	out, err := p.command(ctx, py, "-m", "pip", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pip "+in.Pip+" ") {
		return fmt.Errorf("pip in the seed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkSeed gives the venv dir (made --without-pip) the seed's packages, by
// hard links (copies across filesystems), and its bin/pip* scripts with the
// seed's path replaced by dir's.
func linkSeed(seed, dir string) error {
	src, err := sitePackages(seed)
	if err != nil {
		return err
	}
	dst, err := sitePackages(dir)
	if err != nil {
		return err
	}
	des, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, de := range des {
		if _, err := os.Lstat(filepath.Join(dst, de.Name())); err == nil {
			continue
		}
		if err := linkTree(filepath.Join(src, de.Name()), filepath.Join(dst, de.Name())); err != nil {
			return err
		}
	}
	sb, db := venvBin(seed), venvBin(dir)
	des, err = os.ReadDir(sb)
	if err != nil {
		return err
	}
	for _, de := range des {
		target := filepath.Join(db, de.Name())
		if _, err := os.Lstat(target); err == nil || !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sb, de.Name()))
		if err != nil || len(b) < 2 || string(b[:2]) != "#!" {
			continue // not a script: venv made its own
		}
		b = replaceAll(b, seed, dir)
		if err := os.WriteFile(target, b, 0o755); err != nil {
			return err
		}
	}
	return nil
}
