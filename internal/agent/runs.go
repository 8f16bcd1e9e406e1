package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/logstream"
)

// A run record is kept on disk from the moment a task is taken until its
// final status is reported, in RunsDir/<task>/: record.json, and run/,
// the executor's run folder (output, status). A daemon started again with
// the same worker id reads them: a task whose process still runs is
// taken back, one whose process ended meanwhile gets its final status,
// and one whose process is gone is failed with reason "agent lost".
type runRecord struct {
	Task      string    `json:"task"`
	QueueID   string    `json:"queue_id"`
	QueueName string    `json:"queue_name"`
	Owner     string    `json:"owner,omitempty"`
	Slot      Slot      `json:"slot"`
	Marker    string    `json:"marker,omitempty"` // what the run's processes carry (RunMarkerEnv)
	Docker    bool      `json:"docker,omitempty"`
	Taken     time.Time `json:"taken"`
}

const reasonAgentLost = "agent lost"

func (a *Agent) runDir(task string) string { return filepath.Join(a.cfg.RunsDir, task) }

func (a *Agent) saveRecord(rec *runRecord) {
	if a.cfg.RunsDir == "" {
		return
	}
	dir := a.runDir(rec.Task)
	data, _ := json.Marshal(rec)
	if err := os.MkdirAll(dir, 0o700); err == nil {
		tmp := filepath.Join(dir, "record.json.tmp")
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, filepath.Join(dir, "record.json"))
		}
		if err == nil {
			return
		}
	}
	a.log.Warn("recording the running task on disk; a restart could not take it back", "task", rec.Task)
}

func (a *Agent) dropRecord(task string) {
	if a.cfg.RunsDir != "" {
		os.RemoveAll(a.runDir(task))
	}
}

// records lists the run records an earlier daemon left.
func (a *Agent) records() []*runRecord {
	if a.cfg.RunsDir == "" {
		return nil
	}
	entries, err := os.ReadDir(a.cfg.RunsDir)
	if err != nil {
		return nil
	}
	var out []*runRecord
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(a.cfg.RunsDir, e.Name(), "record.json"))
		if err != nil {
			os.RemoveAll(filepath.Join(a.cfg.RunsDir, e.Name())) // half-written: nothing ran
			continue
		}
		var rec runRecord
		if json.Unmarshal(data, &rec) != nil || rec.Task != e.Name() {
			a.log.Warn("ignoring a damaged run record", "dir", e.Name())
			continue
		}
		out = append(out, &rec)
	}
	return out
}

// recoverRuns runs before the first poll: it delivers the task logs an
// earlier daemon left (exactly once), then takes back the tasks whose
// process survived it, and fails those whose process is gone. It returns
// the tasks to take back, with where their logs continue.
func (a *Agent) recoverRuns(ctx context.Context) []*resumed {
	recs := a.records()
	resumes := map[string]logstream.Resume{}
	for _, rec := range recs {
		r, err := logstream.ResumePoint(a.cfg.SpoolDir, rec.Task)
		if err != nil {
			a.log.Warn("reading the log spool of an earlier run", "task", rec.Task, "err", err)
		}
		// The spools are delivered and removed below, and the new one has
		// no mark until its first line: the resume point is kept with the
		// run, so that a crash before then does not start the log over.
		r = a.keepResume(rec.Task, r)
		resumes[rec.Task] = r
	}
	if a.cfg.SpoolDir != "" {
		if sent, err := logstream.Recover(ctx, a.cfg.SpoolDir, eventSender{a.api, a.cfg.Metrics}, a.log); err != nil {
			a.log.Warn("delivering task logs left by an earlier run", "err", err)
		} else if sent > 0 {
			a.log.Info("delivered task log lines left by an earlier run", "events", sent)
		}
	}
	var back []*resumed
	for _, rec := range recs {
		dir := filepath.Join(a.runDir(rec.Task), "run")
		status, _, err := a.api.TaskStatus(ctx, rec.Task)
		switch {
		case apiclient.IsNotFound(err):
			a.log.Info("a task of an earlier run was deleted", "task", rec.Task)
			a.stopLeftover(ctx, rec, dir)
			a.dropRecord(rec.Task)
		case err != nil:
			a.log.Warn("checking a task of an earlier run; leaving it for the next start", "task", rec.Task, "err", err)
		case status != api.StatusInProgress:
			// Someone else decided its status (aborted and reset, ...).
			a.log.Info("a task of an earlier run is no longer in progress", "task", rec.Task, "status", status)
			a.stopLeftover(ctx, rec, dir)
			a.dropRecord(rec.Task)
		case rec.Marker != "" && (executor.ShimAlive(dir) || executor.Ended(dir)):
			a.log.Info("taking back a task of an earlier run", "task", rec.Task, "worker", rec.Slot.WorkerID)
			back = append(back, &resumed{rec: rec, resume: resumes[rec.Task]})
		default:
			a.log.Warn("a task of an earlier run lost its process; failing it", "task", rec.Task)
			a.stopLeftover(ctx, rec, dir)
			slot := rec.Slot
			a.finish(ctx, a.api, &slot, rec.Task, "tasks.failed", reasonAgentLost)
			if rec.Slot.Child {
				a.api.UnregisterWorker(ctx, rec.Slot.WorkerID)
			}
			if a.cfg.AfterTask != nil {
				a.cfg.AfterTask(rec.Task) // its folder
			}
			a.dropRecord(rec.Task)
		}
	}
	return back
}

// resumeFile, in a run's folder, holds the furthest resume point any
// daemon found for the run's log (see keepResume).
const resumeFile = "resume.json"

// keepResume returns the furthest of r and the resume point recorded with
// the run, and records it (atomically) before the spools it came from are
// delivered and removed. Both only grow: a resume point says that the
// task's output before it was spooled (and, once the spool is gone,
// delivered).
func (a *Agent) keepResume(task string, r logstream.Resume) logstream.Resume {
	if a.cfg.RunsDir == "" {
		return r
	}
	path := filepath.Join(a.runDir(task), resumeFile)
	var kept logstream.Resume
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &kept) == nil {
		r.SourceOffset = max(r.SourceOffset, kept.SourceOffset)
		r.LastTimestamp = max(r.LastTimestamp, kept.LastTimestamp)
		r.Found = r.Found || kept.Found
	}
	data, _ := json.Marshal(r)
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, data, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		a.log.Warn("recording where the task's log resumes; a crash now may send some lines twice", "task", task, "err", err)
	}
	return r
}

// stopLeftover stops what may remain of a run that is not taken back.
func (a *Agent) stopLeftover(ctx context.Context, rec *runRecord, dir string) {
	if executor.ShimAlive(dir) {
		executor.StopRun(dir)
	}
	if rec.Docker && rec.Marker != "" && a.cfg.Leftovers != nil {
		a.cfg.Leftovers(ctx, rec.Marker)
	}
}

// resumed is a task taken back after a restart.
type resumed struct {
	rec    *runRecord
	resume logstream.Resume
}

func (r *resumed) String() string {
	return fmt.Sprintf("%s from output offset %d", r.rec.Task, r.resume.SourceOffset)
}
