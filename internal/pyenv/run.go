package pyenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// command runs python or pip with the prepared environment, in its own
// process group so that cancelling ctx stops pip's children too.
func (p *prep) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = p.env
	cmd.WaitDelay = 5 * time.Second
	setProcGroup(cmd)
	return cmd
}

// createVenv makes the venv: --without-pip plus the seed's pip when seeds is
// set (falling back to ensurepip), plain `python -m venv` otherwise.
func (p *prep) createVenv(ctx context.Context, in *interpreter, dir, seeds string) error {
	args := []string{"-m", "venv"}
	if p.o.SystemSitePackages {
		args = append(args, "--system-site-packages")
	}
	if seeds != "" && runtime.GOOS != "windows" {
		args = append(args, "--without-pip")
	} else {
		seeds = ""
	}
	args = append(args, dir)
	if out, err := p.command(ctx, in.Path, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pyenv: %s -m venv %s: %v: %s", in.Path, dir, err, strings.TrimSpace(string(out)))
	}
	if seeds == "" {
		return nil
	}
	seed, err := p.ensureSeed(ctx, in, seeds)
	if err == nil {
		err = linkSeed(seed, dir)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pyenv: %w", ctx.Err())
	}
	p.logf("WARNING: seeding pip from a cached venv failed (%v), running ensurepip", err)
	py := venvPython(dir)
	if out, err := p.command(ctx, py, "-m", "ensurepip", "--default-pip").CombinedOutput(); err != nil {
		return fmt.Errorf("pyenv: %s -m ensurepip: %v: %s", py, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pipInstall runs `pip install -r reqFile PipArgs...`, streaming its output
// to the task log. The error carries pip's ERROR lines.
func (p *prep) pipInstall(ctx context.Context, py, reqFile, cwd string) error {
	args := []string{"-m", "pip", "--disable-pip-version-check", "--no-input", "install", "-r", reqFile}
	args = append(args, p.o.PipArgs...)
	p.logf("pip install -r %s %s", reqFile, redact(strings.Join(p.o.PipArgs, " ")))
	tw := &tailWriter{w: p.log, max: 200}
	cmd := p.command(ctx, py, args...)
	cmd.Dir = cwd
	cmd.Stdout, cmd.Stderr = tw, tw
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pyenv: pip install: %w", ctx.Err())
	}
	return &InstallError{Tool: "pip install", Err: err, Detail: tw.summary()}
}

// InstallError is a package installer that failed. Its text is one line:
// the tool, its exit status and the first line that says why; Detail has
// the lines around it (the whole output is already in the task log).
type InstallError struct {
	Tool   string
	Err    error
	Detail string
}

func (e *InstallError) Error() string {
	msg := fmt.Sprintf("%s failed (%v)", e.Tool, e.Err)
	if first := firstErrorLine(e.Detail); first != "" {
		msg += ": " + first
	}
	return msg
}

func (e *InstallError) Unwrap() error { return e.Err }

// firstErrorLine is the line of an installer's output that names the
// cause: the last "ERROR:" line (pip says the root cause last), else the
// last line.
func firstErrorLine(detail string) string {
	lines := strings.Split(strings.TrimSpace(detail), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "ERROR:") {
			if strings.HasSuffix(l, ":") && i < len(lines)-1 {
				// "ERROR: Exception:" opens a traceback: its last line
				// names the exception.
				return last
			}
			return l
		}
	}
	return last
}

// listScript prints what `pip freeze` prints, read with importlib.metadata
// so that it needs no pip: name==version per distribution (name @ URL for
// direct URL installs, PEP 610, with pip's #hash and #subdirectory
// fragments), the first one on sys.path winning, pip
// left out (and setuptools, distribute and wheel before Python 3.12, as
// pip does), sorted by name without case.
const listScript = `import json, re, sys
from importlib import metadata
skip = {"pip"}
if sys.version_info < (3, 12):
    skip |= {"setuptools", "distribute", "wheel"}
found = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in found:
        continue
    line = "%s==%s" % (name, d.version)
    try:
        u = json.loads(d.read_text("direct_url.json") or "null")
    except Exception:
        u = None
    if isinstance(u, dict) and u.get("url") and not (u.get("dir_info") or {}).get("editable"):
        vcs, archive, frag = u.get("vcs_info"), u.get("archive_info"), []
        if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
            line = "%s @ %s+%s@%s" % (name, vcs["vcs"], u["url"], vcs["commit_id"])
        else:
            line = "%s @ %s" % (name, u["url"])
            if isinstance(archive, dict) and archive.get("hash"):
                frag.append(archive["hash"])
        if u.get("subdirectory"):
            frag.append("subdirectory=" + u["subdirectory"])
        if frag:
            line += "#" + "&".join(frag)
    found[key] = (name.lower(), None if key in skip else line)
for _, line in sorted(found.values()):
    if line:
        print(line)
`

// freeze returns `pip freeze` (or the installed distributions when pip is
// missing), without clearml-agent lines as upstream does.
func (p *prep) freeze(ctx context.Context, py string) string {
	out, err := p.command(ctx, py, "-m", "pip", "--disable-pip-version-check", "freeze").Output()
	if err != nil {
		return p.listInstalled(ctx, py)
	}
	return freezeLines(out)
}

// listInstalled is the freeze of an interpreter without pip (listScript);
// "" with a warning in the log when it cannot be read.
func (p *prep) listInstalled(ctx context.Context, py string) string {
	out, err := p.command(ctx, py, "-c", listScript).Output()
	if err != nil {
		p.logf("WARNING: cannot list installed packages: %v", err)
		return ""
	}
	return freezeLines(out)
}

// freezeLines drops empty and clearml-agent lines, as upstream does.
func freezeLines(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" && !strings.Contains(l, "clearml-agent") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// tailWriter passes output through and keeps its last lines.
type tailWriter struct {
	mu      sync.Mutex
	w       io.Writer
	max     int
	partial []byte
	lines   []string
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(b)
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.add(string(bytes.TrimRight(t.partial[:i], "\r")))
		t.partial = t.partial[i+1:]
	}
	return len(b), nil
}

func (t *tailWriter) add(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// summary is pip's ERROR lines, or the last lines when there are none.
func (t *tailWriter) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.add(string(t.partial))
		t.partial = nil
	}
	var errs []string
	for _, l := range t.lines {
		if strings.HasPrefix(l, "ERROR:") || strings.Contains(strings.ToLower(l), "error:") {
			errs = append(errs, l)
		}
	}
	switch {
	case len(errs) == 0:
		errs = t.lines[max(0, len(t.lines)-15):]
	case errs[len(errs)-1] != t.lines[len(t.lines)-1]:
		errs = append(errs, t.lines[len(t.lines)-1]) // a traceback's last line
	}
	if len(errs) > 20 {
		errs = errs[len(errs)-20:]
	}
	return strings.Join(errs, "\n")
}

// linkTree copies the tree at src to dst as `cp -al` does: directories are
// created, files hard-linked (copied when linking fails, e.g. across
// filesystems), symlinks recreated.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			if os.Link(path, target) == nil {
				return nil
			}
			return copyFile(path, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime()) // keeps .pyc files valid
}

func replaceAll(b []byte, old, new string) []byte {
	return bytes.ReplaceAll(b, []byte(old), []byte(new))
}
