package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// busyboxImage is the benchmark's local image: the host's static busybox
// (Debian's busybox-static) and nothing else, made with `docker import`
// (no registry is needed). Bump the version when the recipe changes.
const busyboxImage = "clearml-agent-bench/busybox:1"

// busyboxApplets are the commands the image links to busybox: what the
// agent's set-up script and the tasks use.
var busyboxApplets = []string{"sh", "ash", "cat", "echo", "env", "sleep", "ps", "ls", "mkdir", "cp", "chmod", "rm",
	"grep", "sed", "id", "true", "false", "test", "[", "kill", "df", "hostname", "head", "tail", "wc", "mount", "date", "seq", "tr", "touch"}

// dockerEngine returns why docker mode cannot be measured here ("" when
// a docker engine answers).
func dockerEngine(ctx context.Context) string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "skipped: docker CLI not installed"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("skipped: docker engine not reachable (%v: %s)", err, oneLine(string(out)))
	}
	return ""
}

var errNoBusybox = errors.New("skipped: no static busybox on this machine (install Debian's busybox-static) to build the image from")

// ensureBusybox builds busyboxImage unless it exists.
func ensureBusybox(ctx context.Context) error {
	if exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", busyboxImage).Run() == nil {
		return nil
	}
	bin := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(p) {
			bin = p
			break
		}
	}
	if bin == "" {
		return errNoBusybox
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "etc", "root", "proc", "sys", "dev", "data"} {
		tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir})
	}
	tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir})
	file := func(name string, mode int64, body []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	file("bin/busybox", 0o755, data)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\n"))
	if err := tw.Close(); err != nil {
		return fmt.Errorf("packing the busybox image: %w", err)
	}
	cmd := exec.CommandContext(ctx, "docker", "import", "-", busyboxImage)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import %s: %w: %s", busyboxImage, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// runDocker: a shell task's enqueue to first line, run by a daemon in
// process mode and by one in docker mode with the local busybox image
// (the first task of each, not counted, warms the page cache).
func runDocker(ctx context.Context, r *runner) ([]Result, error) {
	if why := dockerEngine(ctx); why != "" {
		return []Result{{Metric: "docker: enqueue to first line", Skipped: why}}, nil
	}
	if err := ensureBusybox(ctx); errors.Is(err, errNoBusybox) {
		return []Result{{Metric: "docker: enqueue to first line", Skipped: err.Error()}}, nil
	} else if err != nil {
		return nil, err
	}
	var res []Result
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"process", nil},
		{"docker", []string{"--docker", busyboxImage}},
	} {
		st, srv, _, err := r.daemonStack(ctx, mode.name, nil, append([]string{"--cpu-only"}, mode.args...)...)
		if err != nil {
			return res, err
		}
		if _, err := firstLine(ctx, srv.api, shFirstLine); err != nil {
			st.close()
			return res, err
		}
		var ds []time.Duration
		for range r.size(10, 3) {
			d, err := firstLine(ctx, srv.api, shFirstLine)
			if err != nil {
				st.close()
				return res, err
			}
			ds = append(ds, d)
		}
		st.close()
		p50, _, mx := percentiles(ds)
		note := "shell task (/bin/sh)"
		if mode.name == "docker" {
			note += ", local busybox image"
		}
		res = append(res,
			Result{Metric: mode.name + ": enqueue to first line p50", Value: ms(p50), Unit: "ms", N: len(ds), Note: note},
			Result{Metric: mode.name + ": enqueue to first line max", Value: ms(mx), Unit: "ms", N: len(ds)})
	}
	return res, nil
}
