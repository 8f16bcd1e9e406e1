package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Synthetic tasks, for measurements at scale: agentbench's listing
// scenario and the store's listing benchmarks store a million tasks in
// seconds this way, where a million task writes take many minutes.

// SyntheticTasks describes the tasks GenerateTasks writes. Task i (from
// 0) of N is created Start plus i seconds (the last is the newest) and
// updated up to a day later; its status is one of a realistic mix (80 %
// completed, 10 % failed, 5 % stopped, 3 % created, 1 % queued, 1 % in
// progress); it is in project P<i mod 47> and belongs to user U<i mod 10>
// (or User, for every tenth); every tenth is tagged "best" and one in a
// hundred is archived.
type SyntheticTasks struct {
	Company string
	User    string // owner of every tenth task; the others belong to users U0 to U9
	N       int
	Start   time.Time
	// Prefix starts each id (then i in hex, 32 characters in all), so that
	// runs do not collide.
	Prefix string
}

// syntheticBatch is how many tasks one transaction writes.
const syntheticBatch = 50_000

// GenerateTasks writes the tasks (documents and listing rows), each batch
// in one statement per table run by the database itself.
func GenerateTasks(ctx context.Context, st Store, spec SyntheticTasks) error {
	s, ok := st.(*sqlStore)
	if !ok {
		return fmt.Errorf("generating tasks: not a SQL store")
	}
	if len(spec.Prefix) > 8 || strings.ContainsAny(spec.Prefix, "'\\") {
		return fmt.Errorf("generating tasks: prefix %q: at most 8 characters, no quotes", spec.Prefix)
	}
	sql := syntheticSQL(s.dialect, spec.Prefix)
	start := spec.Start.UnixMicro()
	for from := 0; from < spec.N; from += syntheticBatch {
		to := min(from+syntheticBatch, spec.N) - 1
		err := st.Update(ctx, func(tx Tx) error {
			t := tx.(*sqlTx)
			for _, q := range sql {
				if _, err := t.exec(q, from, to, start, spec.Company, spec.User); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("generating tasks %d to %d: %w", from, to, err)
		}
	}
	if s.searchFTS {
		if err := st.Update(ctx, func(tx Tx) error { return tx.(*sqlTx).indexNewSearchRows() }); err != nil {
			return fmt.Errorf("generating tasks: indexing their search text: %w", err)
		}
	}
	if s.dialect == "postgres" {
		// What autovacuum would soon do: the planner's statistics of the
		// new rows.
		if _, err := s.write.ExecContext(ctx, `VACUUM (ANALYZE) tasks, task_list`); err != nil {
			return fmt.Errorf("generating tasks: analyzing: %w", err)
		}
	}
	return nil
}

// syntheticSQL is the two INSERT statements (tasks, task_list) of a batch;
// their parameters are the first and last i, the start in microseconds,
// the company and the user.
func syntheticSQL(dialect, prefix string) []string {
	// series yields i and the parameters as columns; hex is i's id.
	series := `WITH RECURSIVE n(i) AS (SELECT CAST(? AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < ?),
		s AS (SELECT i, CAST(? AS BIGINT) + i * 1000000 AS created, ? AS company, ? AS owner FROM n)`
	hex := fmt.Sprintf(`printf('%%s%%0%dx', '%s', i)`, 32-len(prefix), prefix)
	if dialect == "postgres" {
		series = `WITH s AS (SELECT i, CAST($3 AS BIGINT) + i * 1000000 AS created, CAST($4 AS TEXT) AS company,
			CAST($5 AS TEXT) AS owner FROM generate_series(CAST($1 AS BIGINT), CAST($2 AS BIGINT)) AS i)`
		hex = fmt.Sprintf(`'%s' || lpad(to_hex(i), %d, '0')`, prefix, 32-len(prefix))
	}
	status := `CASE WHEN i % 100 < 80 THEN 'completed' WHEN i % 100 < 90 THEN 'failed' WHEN i % 100 < 95 THEN 'stopped'
		WHEN i % 100 < 98 THEN 'created' WHEN i % 100 = 98 THEN 'queued' ELSE 'in_progress' END`
	user := `CASE WHEN i % 10 = 0 THEN owner ELSE 'U' || CAST(i % 10 AS TEXT) END`
	project := `'P' || CAST(i % 47 AS TEXT)`
	typ := `CASE WHEN i % 4 = 0 THEN 'testing' ELSE 'training' END`
	name := `'experiment ' || CAST(i AS TEXT)`
	updated := `(created + (i * 7919 % 86400) * 1000000)`
	started := `(created + 5000000)`
	tags := `CASE WHEN i % 10 = 0 THEN '["best"]' ELSE '[]' END`
	systemTags := `CASE WHEN i % 100 = 7 THEN '["archived"]' ELSE '[]' END`
	ms := func(us string) string { return "CAST(" + us + " / 1000 AS TEXT)" }
	doc := `'{"id":"' || ` + hex + ` || '","company":"' || company || '","name":"' || ` + name + ` || '","status":"' || ` + status +
		` || '","project":"' || ` + project + ` || '","user":"' || ` + user + ` || '","type":"' || ` + typ +
		` || '","created":' || ` + ms("created") + ` || ',"started":' || ` + ms(started) + ` || ',"last_update":' || ` + ms(updated) +
		` || ',"tags":' || ` + tags + ` || ',"system_tags":' || ` + systemTags + ` || '}'`
	return []string{
		series + ` INSERT INTO tasks (id, company, status, project, last_update_ms, doc)
			SELECT ` + hex + `, company, ` + status + `, ` + project + `, ` + updated + ` / 1000, ` + doc + ` FROM s`,
		series + ` INSERT INTO task_list (id, company, status, project, user_id, type, name, created_us, started_us,
			last_update_us, tags, system_tags, search)
			SELECT ` + hex + `, company, ` + status + `, ` + project + `, ` + user + `, ` + typ + `, ` + name + `, created, ` +
			started + `, ` + updated + `, CASE WHEN i % 10 = 0 THEN ',"best",' ELSE ',' END,
			CASE WHEN i % 100 = 7 THEN ',"archived",' ELSE ',' END, lower(` + hex + ` || ' ' || ` + name + ` || ' ') FROM s`,
	}
}
