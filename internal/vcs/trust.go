package vcs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A cached mirror is written only by the agent (on the host, under its
// lock), and is checked before each use: git runs what a repository's
// configuration and hooks say (core.fsmonitor, core.sshCommand,
// remote.*.uploadpack, hooks run by fetch), so a mirror that anything else
// changed must never be used.

// mirrorConfigKeys are the only keys of a mirror's configuration the agent
// writes (git clone --mirror, and set-url), lower-cased as git lists them.
var mirrorConfigKeys = map[string]bool{
	"core.repositoryformatversion": true, "core.filemode": true, "core.bare": true, "core.logallrefupdates": true,
	"core.symlinks": true, "core.ignorecase": true, "core.precomposeunicode": true, "core.hookspath": true,
	"extensions.objectformat": true,
	"remote.origin.url":       true, "remote.origin.fetch": true, "remote.origin.mirror": true,
}

// untrustedMirror says why the mirror in dir cannot be trusted, or returns
// "": it must be a folder of this user that nobody else can write, with
// the configuration the agent writes (hooks off), no hook but git's
// samples, and no alternate object store.
func untrustedMirror(ctx context.Context, r *runner, dir string) string {
	st, err := os.Lstat(dir)
	if err != nil {
		return err.Error()
	}
	if !st.IsDir() {
		return "not a folder"
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Sprintf("owned by uid %d", sys.Uid)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("writable by other users (mode %#o)", st.Mode().Perm())
	}
	for _, f := range []string{"objects/info/alternates", "objects/info/http-alternates"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return f + " is there"
		}
	}
	hooks, _ := os.ReadDir(filepath.Join(dir, "hooks"))
	for _, h := range hooks {
		if !strings.HasSuffix(h.Name(), ".sample") {
			return "it has a hook, " + h.Name()
		}
	}
	out, err := r.run(ctx, "", nil, "config", "--file", filepath.Join(dir, "config"), "--no-includes", "--null", "--list")
	if err != nil {
		return "its configuration cannot be read: " + firstLine(errText(err))
	}
	for _, entry := range strings.Split(out, "\x00") {
		key, value, _ := strings.Cut(entry, "\n")
		switch {
		case key == "":
		case !mirrorConfigKeys[key]:
			return "its configuration sets " + key
		case key == "core.hookspath" && value != os.DevNull:
			return "its configuration sets core.hooksPath to " + value
		}
	}
	return ""
}
