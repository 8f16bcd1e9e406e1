package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ImageUsage remembers when the agent last started a container from each
// image (a small JSON file shared by the daemons of a host), so that the
// cleanup policy removes only images the agent used, least recently used
// first.
type ImageUsage struct {
	path string
	mu   sync.Mutex
	now  func() time.Time
}

// NewImageUsage keeps the record in path.
func NewImageUsage(path string) *ImageUsage { return &ImageUsage{path: path, now: time.Now} }

// Used records that image was used now.
func (u *ImageUsage) Used(image string) {
	u.update(func(m map[string]time.Time) { m[image] = u.now() })
}

// Forget drops an image from the record.
func (u *ImageUsage) Forget(image string) {
	u.update(func(m map[string]time.Time) { delete(m, image) })
}

// Load returns the record.
func (u *ImageUsage) Load() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.load()
}

func (u *ImageUsage) load() map[string]time.Time {
	m := map[string]time.Time{}
	if data, err := os.ReadFile(u.path); err == nil {
		json.Unmarshal(data, &m)
	}
	return m
}

func (u *ImageUsage) update(fn func(map[string]time.Time)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := u.load()
	fn(m)
	data, _ := json.Marshal(m)
	os.MkdirAll(filepath.Dir(u.path), 0o700)
	tmp := u.path + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, u.path)
	}
}

// CleanupPolicy is agent.docker_cleanup: what the daemon removes, every
// Interval and after each task. Only what the agent made is touched:
// containers carrying its run label, images it ran tasks in.
type CleanupPolicy struct {
	Enabled  bool
	Interval time.Duration // default 1 h
	// ContainerMaxAge: stopped agent containers older than this are
	// removed (default 24 h; containers normally go with --rm already).
	ContainerMaxAge time.Duration
	// ImageMaxAge: images the agent has not used for this long are removed
	// (0: kept).
	ImageMaxAge time.Duration
	// MinFreeBytes: while docker's disk has less free space than this,
	// the least recently used agent images are removed (0: no check).
	MinFreeBytes uint64
	// Label selects the containers considered (a docker label filter,
	// default: every agent run, LabelRun).
	Label string
}

// CleanupReport says what one pass removed.
type CleanupReport struct {
	Containers, Images []string
	FreeBytes          uint64
}

// Cleanup runs one pass of the policy.
func (p CleanupPolicy) Cleanup(ctx context.Context, c Client, usage *ImageUsage, log *slog.Logger) (CleanupReport, error) {
	var rep CleanupReport
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := time.Now()
	if p.ContainerMaxAge > 0 {
		label := p.Label
		if label == "" {
			label = LabelRun
		}
		out, err := c.Output(ctx, "ps", "-a", "--no-trunc", "--filter", "label="+label, "--filter", "status=exited",
			"--filter", "status=created", "--filter", "status=dead", "--format", "{{.ID}}\t{{.CreatedAt}}")
		if err != nil {
			return rep, fmt.Errorf("listing stopped agent containers: %w", err)
		}
		var old []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			id, created, ok := strings.Cut(line, "\t")
			if !ok {
				continue
			}
			t, err := parseDockerTime(created)
			if err == nil && now.Sub(t) > p.ContainerMaxAge {
				old = append(old, id)
			}
		}
		if err := c.Remove(ctx, old...); err != nil {
			log.Warn("removing old agent containers", "err", err)
		} else {
			rep.Containers = old
		}
	}
	if usage == nil || (p.ImageMaxAge <= 0 && p.MinFreeBytes == 0) {
		return rep, nil
	}
	used := usage.Load()
	images := make([]string, 0, len(used))
	for img := range used {
		images = append(images, img)
	}
	sort.Slice(images, func(i, j int) bool { return used[images[i]].Before(used[images[j]]) })
	root := dockerRoot(ctx, c)
	for _, img := range images {
		expired := p.ImageMaxAge > 0 && now.Sub(used[img]) > p.ImageMaxAge
		low := false
		if p.MinFreeBytes > 0 && root != "" {
			free, err := freeBytes(root)
			rep.FreeBytes = free
			low = err == nil && free < p.MinFreeBytes
		}
		if !expired && !low {
			continue
		}
		// Not forced: an image a container still uses stays.
		if _, err := c.Output(ctx, "image", "rm", img); err != nil {
			if strings.Contains(err.Error(), "No such image") {
				usage.Forget(img)
			} else {
				log.Debug("image kept", "image", img, "err", err)
			}
			continue
		}
		usage.Forget(img)
		rep.Images = append(rep.Images, img)
	}
	return rep, nil
}

// Loop runs Cleanup every Interval until ctx ends; kick runs a pass
// early (after a task).
func (p CleanupPolicy) Loop(ctx context.Context, c Client, usage *ImageUsage, kick <-chan struct{}, log *slog.Logger) {
	if !p.Enabled {
		return
	}
	interval := p.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rep, err := p.Cleanup(ctx, c, usage, log)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("docker cleanup", "err", err)
		case len(rep.Containers)+len(rep.Images) > 0:
			log.Info("docker cleanup", "containers_removed", len(rep.Containers), "images_removed", rep.Images)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

func parseDockerTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	// "2026-12-03 10:00:00 +0000 UTC"
	if i := strings.LastIndexByte(s, ' '); i > 0 && strings.Count(s, " ") >= 3 {
		s = s[:i]
	}
	return time.Parse("2006-01-02 15:04:05 -0700", s)
}

func dockerRoot(ctx context.Context, c Client) string {
	out, err := c.Output(ctx, "info", "--format", "{{.DockerRootDir}}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
