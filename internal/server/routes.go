package server

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// routes maps endpoint names to handlers with their first API version.
func routes() map[string]route {
	r := func(fn handlerFunc, minor int) route { return route{fn: fn, minMajor: 2, minMinor: minor} }
	rs := map[string]route{
		"auth.login":                             r(authLogin, 1),
		"auth.logout":                            r(authLogout, 2),
		"auth.create_user":                       r(authCreateUser, 1),
		"auth.create_credentials":                r(authCreateCredentials, 1),
		"debug.ping":                             {fn: debugPing, minMajor: 1, noAuth: true},
		"server.info":                            r(serverInfo, 1),
		"users.get_current_user":                 r(usersGetCurrentUser, 1),
		"users.get_all":                          r(usersGetAll, 1),
		"projects.create":                        r(projectsCreate, 1),
		"projects.get_all":                       r(projectsGetAll, 1),
		"projects.get_by_id":                     r(projectsGetByID, 1),
		"projects.update":                        r(projectsUpdate, 1),
		"queues.create":                          r(queuesCreate, 4),
		"queues.get_all":                         r(queuesGetAll, 4),
		"queues.get_by_id":                       r(queuesGetByID, 4),
		"queues.get_default":                     r(queuesGetDefault, 4),
		"queues.update":                          r(queuesUpdate, 4),
		"queues.delete":                          r(queuesDelete, 4),
		"queues.add_task":                        r(queuesAddTask, 4),
		"queues.remove_task":                     r(queuesRemoveTask, 4),
		"queues.get_next_task":                   r(queuesGetNextTask, 4),
		"queues.peek_task":                       r(queuesPeekTask, 15),
		"queues.get_num_entries":                 r(queuesGetNumEntries, 15),
		"queues.move_task_forward":               r(queueMove("forward"), 4),
		"queues.move_task_backward":              r(queueMove("backward"), 4),
		"queues.move_task_to_front":              r(queueMove("front"), 4),
		"queues.move_task_to_back":               r(queueMove("back"), 4),
		"tasks.create":                           r(tasksCreate, 1),
		"tasks.get_by_id":                        r(tasksGetByID, 1),
		"tasks.get_all":                          r(tasksGetAll, 1),
		"tasks.wait_status":                      r(tasksWaitStatus, 1),
		"tasks.edit":                             r(tasksEdit, 1),
		"tasks.update":                           r(tasksUpdate, 1),
		"tasks.started":                          r(statusEndpoint(api.StatusInProgress), 1),
		"tasks.stopped":                          r(statusEndpoint(api.StatusStopped), 1),
		"tasks.failed":                           r(statusEndpoint(api.StatusFailed), 1),
		"tasks.completed":                        r(statusEndpoint(api.StatusCompleted), 2),
		"tasks.close":                            r(statusEndpoint(api.StatusClosed), 1),
		"tasks.publish":                          r(tasksPublish, 1),
		"tasks.stop":                             r(tasksStop, 1),
		"tasks.enqueue":                          {fn: tasksEnqueue, minMajor: 1, minMinor: 5},
		"tasks.dequeue":                          {fn: tasksDequeue, minMajor: 1, minMinor: 5},
		"tasks.reset":                            r(tasksReset, 1),
		"tasks.ping":                             r(tasksPing, 1),
		"tasks.set_requirements":                 r(tasksSetRequirements, 1),
		"tasks.clone":                            r(tasksClone, 5),
		"tasks.delete":                           r(tasksDelete, 1),
		"tasks.archive":                          r(tasksArchive, 12),
		"tasks.get_hyper_params":                 r(tasksGetHyperParams, 9),
		"tasks.edit_hyper_params":                r(tasksEditHyperParams, 9),
		"tasks.delete_hyper_params":              r(tasksDeleteHyperParams, 9),
		"tasks.get_configurations":               r(tasksGetConfigurations, 9),
		"tasks.get_configuration_names":          r(tasksGetConfigurationNames, 9),
		"tasks.edit_configuration":               r(tasksEditConfiguration, 9),
		"tasks.delete_configuration":             r(tasksDeleteConfiguration, 9),
		"tasks.add_or_update_artifacts":          r(tasksAddOrUpdateArtifacts, 10),
		"tasks.delete_artifacts":                 r(tasksDeleteArtifacts, 10),
		"tasks.add_or_update_model":              r(tasksAddOrUpdateModel, 13),
		"tasks.delete_models":                    r(tasksDeleteModels, 13),
		"models.create":                          r(modelsCreate, 1),
		"models.get_by_id":                       r(modelsGetByID, 1),
		"models.get_all":                         r(modelsGetAll, 1),
		"models.edit":                            r(modelsEdit, 1),
		"models.update":                          r(modelsUpdate, 1),
		"models.update_for_task":                 r(modelsUpdateForTask, 1),
		"models.set_ready":                       r(modelsSetReady, 1),
		"models.publish_many":                    r(modelsPublishMany, 13),
		"models.delete":                          r(modelsDelete, 1),
		"models.delete_many":                     r(modelsDeleteMany, 13),
		"models.add_or_update_metadata":          r(modelsAddOrUpdateMetadata, 13),
		"models.delete_metadata":                 r(modelsDeleteMetadata, 13),
		"workers.get_runtime_properties":         r(workersGetRuntimeProperties, 4),
		"workers.set_runtime_properties":         r(workersSetRuntimeProperties, 4),
		"events.get_task_plots":                  r(eventsGetTaskPlots, 1),
		"events.debug_images":                    r(eventsDebugImages, 1),
		"workers.register":                       r(workersRegister, 4),
		"workers.unregister":                     r(workersUnregister, 4),
		"workers.status_report":                  r(workersStatusReport, 4),
		"workers.get_all":                        r(workersGetAll, 4),
		"workers.get_stats":                      r(workersGetStats, 4),
		"events.add":                             r(eventsAdd, 1),
		"events.add_batch":                       {fn: eventsAddBatch, minMajor: 2, minMinor: 1, batch: true},
		"events.get_task_log":                    {fn: eventsGetTaskLog, minMajor: 1, minMinor: 5},
		"events.get_task_events":                 r(eventsGetTaskEvents, 1),
		"events.scalar_metrics_iter_histogram":   r(eventsScalarHistogram, 1),
		"events.get_scalar_metrics_and_variants": r(eventsMetricsAndVariants, 1),
		"events.delete_for_task":                 r(eventsDeleteForTask, 1),
		"events.get_task_single_value_metrics":   r(eventsGetTaskSingleValueMetrics, 20),
	}
	return rs
}

// Endpoints lists the names of the endpoints the server serves, sorted.
func Endpoints() []string {
	rs := routes()
	names := make([]string, 0, len(rs))
	for name := range rs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func debugPing(s *Server, c *call) (any, error) {
	out := map[string]any{}
	for k, v := range c.raw() {
		out[k] = v
	}
	out["msg"] = "ClearML server"
	return out, nil
}

func serverInfo(s *Server, c *call) (any, error) {
	return map[string]any{"version": api.ServerVersion, "build": "goclearml", "commit": "", "uid": s.uid,
		"api_version": api.MaxVersion, "extensions": Extensions, "database": s.store.Dialect()}, nil
}

func usersGetCurrentUser(s *Server, c *call) (any, error) {
	var u *api.User
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.User(c.ident.User)
		return err
	})
	if err != nil {
		return nil, api.ErrInvalidUserID.New("", "id", c.ident.User)
	}
	user := map[string]any{"id": u.ID, "name": u.Name, "given_name": u.Name, "family_name": "", "avatar": "",
		"role": u.Role, "company": map[string]any{"id": u.Company, "name": c.ident.CompanyName}, "preferences": map[string]any{}}
	if u.Created != nil {
		user["created"] = u.Created
	}
	return map[string]any{"user": user, "getting_started": map[string]any{}, "settings": map[string]any{"max_download_items": 1000}}, nil
}

// WatchdogOptions configure the non-responsive task watchdog.
type WatchdogOptions struct {
	// Threshold is how long an in-progress task may go without an update
	// before it is stopped (2 h, as upstream).
	Threshold time.Duration
	// Interval is how often the watchdog looks (15 min, as upstream).
	Interval time.Duration
}

// RunWatchdog stops in-progress tasks that have not been updated for the
// threshold and drops expired worker entries, every interval, until ctx is
// done. It returns ctx's error.
func (s *Server) RunWatchdog(ctx context.Context, o WatchdogOptions) error {
	if o.Threshold == 0 {
		o.Threshold = 2 * time.Hour
	}
	if o.Interval == 0 {
		o.Interval = 15 * time.Minute
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if n, err := s.StopStaleTasks(ctx, o.Threshold); err != nil {
			s.log.Warn("watchdog: stopping non-responsive tasks", "err", err)
		} else if n > 0 {
			s.log.Info("watchdog: stopped non-responsive tasks", slog.Int("count", n))
		}
		err := s.store.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.DeleteExpiredWorkers(s.opts.Now()); err != nil {
				return err
			}
			_, err := tx.DeleteExpiredRevocations(s.opts.Now())
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("watchdog: removing expired workers and ended sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// StopStaleTasks stops every in-progress task whose last update is older
// than threshold and returns how many it stopped.
func (s *Server) StopStaleTasks(ctx context.Context, threshold time.Duration) (int, error) {
	cutoff := s.opts.Now().Add(-threshold)
	var ids []string
	err := s.store.View(ctx, func(tx store.Tx) error {
		tasks, err := tx.Tasks(store.TaskQuery{Company: api.DefaultCompany, Statuses: []string{api.StatusInProgress}, UpdatedBefore: &cutoff})
		for _, t := range tasks {
			ids = append(ids, t.ID)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	c := &call{ctx: ctx, ident: api.Identity{User: "watchdog", Company: api.DefaultCompany, UserName: "watchdog"}}
	stopped := 0
	for _, id := range ids {
		err := s.withTask(c, id, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
			if t.Status != api.StatusInProgress || t.LastUpdate == nil || !t.LastUpdate.Before(cutoff) {
				return errSkip
			}
			const reason = "Forced stop (non-responsive)"
			if _, err := s.setStatus(c, t, api.StatusStopped, true, reason, reason); err != nil {
				return err
			}
			now := s.now()
			t.Completed = &now
			return nil
		})
		switch {
		case err == nil:
			stopped++
		case err == errSkip || api.ErrInvalidTaskID.Is(err):
		default:
			return stopped, err
		}
	}
	return stopped, nil
}

// errSkip aborts a withTask transaction without an error to report.
var errSkip = skipError{}

type skipError struct{}

func (skipError) Error() string { return "skipped" }
