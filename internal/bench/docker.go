package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/goclearml/agent/internal/localimage"
)

// busyboxImage is the benchmark's local image: the host's static busybox
// (Debian's busybox-static) and nothing else, made with `docker import`
// (no registry is needed). Bump the version when the recipe changes.
const busyboxImage = "clearml-agent-bench/busybox:1"

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

var errNoBusybox = fmt.Errorf("skipped: %w", localimage.ErrNoBusybox)

// ensureBusybox builds busyboxImage unless it exists.
func ensureBusybox(ctx context.Context) error {
	err := localimage.Busybox(ctx, busyboxImage)
	if errors.Is(err, localimage.ErrNoBusybox) {
		return errNoBusybox
	}
	return err
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
