package store

import (
	"context"
	"fmt"
	"strings"
)

// migrations are applied in order; each runs once, recorded in
// schema_migrations. {{serial}} expands to the dialect's auto-increment key,
// {{nulls_first}} and {{collate_c}} to PostgreSQL's NULLS FIRST and
// COLLATE "C" (SQLite sorts NULL first and compares bytes already), and
// {{without_rowid}} to SQLite's WITHOUT ROWID (a table that is its
// primary key's b-tree: one write instead of two).
var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE users (id TEXT PRIMARY KEY, company TEXT NOT NULL, doc TEXT NOT NULL);
	CREATE TABLE credentials (access_key TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, user_id TEXT NOT NULL);
	CREATE TABLE tasks (id TEXT PRIMARY KEY, company TEXT NOT NULL, status TEXT NOT NULL, project TEXT NOT NULL,
		last_update_ms BIGINT NOT NULL, doc TEXT NOT NULL);
	CREATE INDEX tasks_status ON tasks (company, status);
	CREATE INDEX tasks_project ON tasks (company, project);
	CREATE TABLE projects (id TEXT PRIMARY KEY, company TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
		UNIQUE (company, name));
	CREATE TABLE queues (id TEXT PRIMARY KEY, company TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
		UNIQUE (company, name));
	CREATE TABLE queue_entries (seq {{serial}}, queue_id TEXT NOT NULL, task_id TEXT NOT NULL,
		added_ms BIGINT NOT NULL, UNIQUE (queue_id, task_id));
	CREATE INDEX queue_entries_head ON queue_entries (queue_id, seq);
	CREATE INDEX queue_entries_task ON queue_entries (task_id);
	CREATE TABLE workers (company TEXT NOT NULL, user_id TEXT NOT NULL, worker_id TEXT NOT NULL,
		expires_ms BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (company, user_id, worker_id));
	CREATE TABLE events (seq {{serial}}, task_id TEXT NOT NULL, etype TEXT NOT NULL, ts BIGINT NOT NULL,
		iter BIGINT NOT NULL, metric TEXT NOT NULL, variant TEXT NOT NULL, ekey TEXT NOT NULL, doc TEXT NOT NULL);
	CREATE INDEX events_task ON events (task_id, etype, ts, seq);
	CREATE INDEX events_key ON events (ekey);`,
	// 2: models (stored like tasks) and worker runtime properties.
	`CREATE TABLE models (id TEXT PRIMARY KEY, company TEXT NOT NULL, project TEXT NOT NULL, task TEXT NOT NULL,
		doc TEXT NOT NULL);
	CREATE INDEX models_task ON models (company, task);
	CREATE INDEX models_project ON models (company, project);
	CREATE TABLE worker_properties (company TEXT NOT NULL, worker_id TEXT NOT NULL, key TEXT NOT NULL,
		value TEXT NOT NULL, expires_ms BIGINT NOT NULL, PRIMARY KEY (company, worker_id, key));`,
	// 3: login sessions ended by auth.logout, kept until they would expire.
	`CREATE TABLE revoked_sessions (session_id TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL);`,
	// 4: the task listing table (task_list.go), filled from the tasks. The
	// index covers the default listing (newest first, without archived or
	// hidden tasks), so that a page, even a deep one, reads no table row.
	`CREATE TABLE task_list (id TEXT PRIMARY KEY, company TEXT NOT NULL, status TEXT NOT NULL, project TEXT NOT NULL,
		user_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL, created_us BIGINT, started_us BIGINT,
		last_update_us BIGINT, tags TEXT NOT NULL, system_tags TEXT NOT NULL, search TEXT NOT NULL);
	CREATE INDEX task_list_created ON task_list (company, created_us{{nulls_first}}, system_tags, id{{collate_c}});`,
	// 5: the machine statistics of worker status reports (workers.get_stats).
	`CREATE TABLE worker_stats (company TEXT NOT NULL, worker_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, doc TEXT NOT NULL);
	CREATE INDEX worker_stats_worker ON worker_stats (company, worker_id, ts_ms);`,
	// 6: hand-outs of queues.get_next_task (leases.go): a row per task
	// handed out and not yet started, taken back and not handed out again,
	// or acknowledged in the last minutes (so that a retried
	// acknowledgement is recognised). The table stays small and is read
	// whole by the sweep.
	`CREATE TABLE task_leases (task_id TEXT PRIMARY KEY, lease_id TEXT NOT NULL, worker TEXT NOT NULL,
		queue_id TEXT NOT NULL, seq BIGINT NOT NULL, added_ms BIGINT NOT NULL, until_ms BIGINT NOT NULL,
		state TEXT NOT NULL){{without_rowid}};`,
	// 7: listings by last update (the ClearML web UI's default order),
	// across projects and within one: a page of the newest updated tasks
	// reads ten index entries instead of every listing row. The tags join
	// the time indexes, so that a tag filter is tested in the index as it
	// is walked (a common tag fills a page at once; a rare one costs a walk
	// of the index, not a read of every row).
	`DROP INDEX task_list_created;
	CREATE INDEX task_list_created ON task_list (company, created_us{{nulls_first}}, system_tags, tags, id{{collate_c}});
	CREATE INDEX task_list_updated ON task_list (company, last_update_us{{nulls_first}}, system_tags, tags, id{{collate_c}});
	CREATE INDEX task_list_project ON task_list (company, project, last_update_us{{nulls_first}});`,
	// 8: an index for the listing's text search (task_search.go): an FTS5
	// table on SQLite, a trigram index on PostgreSQL.
	`ALTER TABLE task_list ADD COLUMN search_rid BIGINT`,
	// 9: listings by name (a click on the web UI's column) and by start
	// time (the web UI's throughput: the tasks started in the last hour):
	// a page of ten reads ten index entries instead of sorting every
	// listing row. Neither the name nor the start time is among the
	// columns a task's write sets in place (see taskListUpdate), so the
	// indexes cost SQLite nothing but on a rename and a start or reset.
	`CREATE INDEX task_list_name ON task_list (company, name{{collate_c}}{{nulls_first}}, id{{collate_c}}, system_tags, tags);
	CREATE INDEX task_list_started ON task_list (company, started_us{{nulls_first}}, system_tags, tags, id{{collate_c}})`,
	// 10: listings by status and by type (a click on the web UI's
	// columns), ties by id in the order's direction: a page reads its
	// entries of an index, forwards or backwards, instead of sorting every
	// listing row. The type is not among the columns a task's write sets
	// in place (see taskListUpdate). On SQLite the tasks table's status
	// index goes (dropStatusIndex).
	`CREATE INDEX task_list_status ON task_list (company, status{{collate_c}}{{nulls_first}}, id{{collate_c}}, system_tags, tags);
	CREATE INDEX task_list_type ON task_list (company, type{{collate_c}}{{nulls_first}}, id{{collate_c}}, system_tags, tags)`,
}

// migrationSteps run in Go after the statements of a migration (by
// version), in the same transaction.
var migrationSteps = map[int]func(*sqlTx) error{4: backfillTaskList, 8: searchIndex, 10: dropStatusIndex}

// dropStatusIndex drops the tasks table's status index on SQLite, where
// the listing's serves the queries on status (Tasks): a status change
// would otherwise move the task in two status indexes, a page or two more
// in every commit of the queue path. PostgreSQL keeps it: it plans the
// tasks of a status read through the listing poorly (a scan of every
// task), and moving an entry there costs an index insertion, which every
// update that changes an indexed column makes in every index anyway.
func dropStatusIndex(t *sqlTx) error {
	if t.s.dialect != "sqlite" {
		return nil
	}
	_, err := t.exec(`DROP INDEX tasks_status`)
	return err
}

func (s *sqlStore) migrate(ctx context.Context) error {
	dialectDDL := strings.NewReplacer("{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{nulls_first}}", "", "{{collate_c}}", "",
		"{{without_rowid}}", " WITHOUT ROWID")
	if s.dialect == "postgres" {
		dialectDDL = strings.NewReplacer("{{serial}}", "BIGSERIAL PRIMARY KEY", "{{nulls_first}}", " NULLS FIRST", "{{collate_c}}", ` COLLATE "C"`,
			"{{without_rowid}}", "")
	}
	return s.runTx(ctx, s.write, true, func(x Tx) error {
		t := x.(*sqlTx)
		if s.dialect == "postgres" {
			// Replicas starting together must not migrate twice.
			if _, err := t.exec(`SELECT pg_advisory_xact_lock(727271)`); err != nil {
				return fmt.Errorf("locking schema: %w", err)
			}
		}
		if _, err := t.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var current int
		if err := t.queryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		if current > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this binary (%d): upgrade clearml-agent", current, len(migrations))
		}
		for v := current + 1; v <= len(migrations); v++ {
			for _, stmt := range strings.Split(migrations[v-1], ";") {
				stmt = strings.TrimSpace(dialectDDL.Replace(stmt))
				if stmt == "" {
					continue
				}
				if _, err := t.exec(stmt); err != nil {
					return fmt.Errorf("applying migration %d: %w", v, err)
				}
			}
			if step := migrationSteps[v]; step != nil {
				if err := step(t); err != nil {
					return fmt.Errorf("applying migration %d: %w", v, err)
				}
			}
			if _, err := t.exec(`INSERT INTO schema_migrations (version) VALUES (?)`, v); err != nil {
				return fmt.Errorf("recording migration %d: %w", v, err)
			}
		}
		return nil
	})
}
