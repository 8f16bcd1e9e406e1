package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// The task listing table (task_list) holds, for every task, the few fields
// a listing filters and sorts on, next to its id: a narrow table that a
// query scans in a few milliseconds where the tasks table, whose documents
// run to kilobytes, would take seconds. PutTask and DeleteTask keep it in
// step with the tasks table, in the same transaction.

// TermFilter selects on one field: with Include, the field's value (for a
// list field, one of its values) must be one of them; no value may be one
// of Exclude. Nil lists do not filter. Terms are never empty strings.
type TermFilter struct {
	Include []string
	Exclude []string
}

func (f TermFilter) empty() bool { return len(f.Include) == 0 && len(f.Exclude) == 0 }

// TimeBound is one bound of a date filter: Op is ">", ">=", "<" or "<=".
type TimeBound struct {
	Op string
	T  time.Time
}

// TaskOrder is one sort key of a listing.
type TaskOrder struct {
	// Field is created, last_update, started, name, status or type.
	Field string
	Desc  bool
}

// TaskPageQuery is one page of a company's tasks, filtered, sorted and
// paged by the database. Ties are broken by id, in the direction of the
// order's last field (ascending without one), as the server's generic
// listing does: an index of a field and the id then serves the order read
// backwards as well as forwards.
type TaskPageQuery struct {
	Company                     string
	Status, Project, User, Type TermFilter
	Tags, SystemTags            TermFilter
	// Search keeps the tasks whose lowercased "id name comment" contains it
	// (it must be lowercase).
	Search string
	// HideHidden drops tasks with the system tag "hidden".
	HideHidden bool
	// Started keeps the tasks that have a start time within all bounds.
	Started []TimeBound
	Order   []TaskOrder
	Offset  int
	Limit   int
	// After continues a scroll after a task (keyset paging: the page
	// starts right after it, however many tasks came or went before it).
	// It needs an order of one field (then ties by id in its direction) and
	// no Offset.
	After *TaskCursor
}

// TaskCursor is a task's place in a listing: its value of the order's
// field (int64 microseconds for a time, a string otherwise, nil when the
// task has none) and its id.
type TaskCursor struct {
	Value any
	ID    string
}

// TaskOrderFields are the fields a TaskPageQuery sorts on.
var TaskOrderFields = []string{"created", "last_update", "started", "name", "status", "type"}

// orderColumns maps a sort field to its column; times are microseconds,
// NULL when the task has none (sorted first, as the server's generic
// ordering puts a missing value before any other).
var orderColumns = map[string]string{"created": "created_us", "last_update": "last_update_us", "started": "started_us",
	"name": "name", "status": "status", "type": "type"}

// listText encodes a list of values for the instr() membership test: the
// JSON strings between commas, with a comma at each end. A JSON string
// cannot contain an unescaped quote, so `,"v",` matches exactly the value v.
func listText(values []string) string {
	var b strings.Builder
	b.WriteByte(',')
	for _, v := range values {
		b.WriteString(jsonString(v))
		b.WriteByte(',')
	}
	return b.String()
}

func jsonString(v string) string {
	q, _ := json.Marshal(v) // a string always encodes
	return string(q)
}

// micros returns t in microseconds (the precision of the API's times), or
// nil.
func micros(t *api.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// putTaskList writes a task's listing row. Most writes change a task's
// status or last update, not its company, project, type, name, created or
// start time, system tags, tags or search text (id, name, comment): a
// plain UPDATE of the other columns then leaves the created, started,
// name, type and search indexes alone (the last-update indexes follow the
// new time), which halves the cost of an upsert; anything else is an
// upsert. statusKept says the task's status is the one its row had (on
// SQLite, which then leaves the status index alone too).
func (t *sqlTx) putTaskList(task *api.Task, statusKept bool) error {
	q, args := t.taskListUpdate(task, statusKept)
	res, err := t.exec(q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return t.rewriteTaskList(task)
}

// taskListUpdate is the statement that updates a task's listing row in
// place; it changes nothing when a column it does not write (see
// listingGuard) would change: rewriteTaskList then writes the row. SQLite
// rewrites the entry of every index over a column an UPDATE sets, changed
// or not: with statusKept the status is a condition, not set.
func (t *sqlTx) taskListUpdate(task *api.Task, statusKept bool) (string, []any) {
	if statusKept {
		return `UPDATE task_list SET user_id = ?, last_update_us = ?
		WHERE id = ? AND status || '' = ? AND ` + listingGuards[t.s.dialect],
			append([]any{task.User, micros(task.LastUpdate), task.ID, task.Status}, listingGuardArgs(task)...)
	}
	return `UPDATE task_list SET status = ?, user_id = ?, last_update_us = ?
		WHERE id = ? AND ` + listingGuards[t.s.dialect],
		append([]any{task.Status, task.User, micros(task.LastUpdate), task.ID}, listingGuardArgs(task)...)
}

// listingGuardColumns are the listing columns an in-place update of a
// task's listing row leaves alone (taskListUpdate, putTaskPostgres,
// EnqueueTask): those of the indexes it need not touch, and the search
// text. Company, project, name, type and start time are written as
// expressions, so that no planner (PostgreSQL's generic plan of a
// prepared statement) takes their indexes to find the row, which is found
// by its id alone.
var listingGuardColumns = []string{"company || ''", "created_us", "system_tags", "tags", "search", "project || ''",
	"name || ''", "started_us + 0", "type || ''"}

// listingGuard is the condition that a listing row's guarded columns hold
// listingGuardArgs' values; param(i) is the placeholder of the i-th.
func listingGuard(dialect string, param func(i int) string) string {
	same := "IS" // NULL IS NULL: the times may be missing
	if dialect == "postgres" {
		same = "IS NOT DISTINCT FROM"
	}
	conds := make([]string, len(listingGuardColumns))
	for i, col := range listingGuardColumns {
		conds[i] = col + " " + same + " " + param(i)
	}
	return strings.Join(conds, " AND ")
}

// listingGuards is listingGuard with '?' placeholders, by dialect, built
// once rather than on each write.
var listingGuards = map[string]string{
	"sqlite":   listingGuard("sqlite", func(int) string { return "?" }),
	"postgres": listingGuard("postgres", func(int) string { return "?" }),
}

// listingGuardArgs are a task's values of listingGuardColumns.
func listingGuardArgs(task *api.Task) []any {
	return []any{task.Company, micros(task.Created), listText(task.SystemTags), listText(task.Tags), taskSearchText(task),
		task.Project, task.Name, micros(task.Started), task.Type}
}

func taskSearchText(task *api.Task) string {
	return strings.ToLower(task.ID + " " + task.Name + " " + task.Comment)
}

// rewriteTaskList writes a task's listing row and its search rows whole.
func (t *sqlTx) rewriteTaskList(task *api.Task) error {
	search := taskSearchText(task)
	old, err := t.readSearchRow(task.ID)
	if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO task_list (id, company, status, project, user_id, type, name, created_us, started_us,
		last_update_us, tags, system_tags, search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET company = excluded.company, status = excluded.status, project = excluded.project,
		user_id = excluded.user_id, type = excluded.type, name = excluded.name, created_us = excluded.created_us,
		started_us = excluded.started_us, last_update_us = excluded.last_update_us, tags = excluded.tags,
		system_tags = excluded.system_tags, search = excluded.search`,
		task.ID, task.Company, task.Status, task.Project, task.User, task.Type, task.Name, micros(task.Created),
		micros(task.Started), micros(task.LastUpdate), listText(task.Tags), listText(task.SystemTags), search)
	if err != nil {
		return err
	}
	return t.putSearch(task.ID, old, search)
}

// backfillTaskList fills task_list from the stored tasks (migration 4).
func backfillTaskList(t *sqlTx) error {
	after := ""
	for {
		// Read a page, then write it: PostgreSQL cannot run a statement
		// while the rows of another are being read on one connection.
		tasks, err := listDocs[api.Task](t, `SELECT doc FROM tasks WHERE id > ? ORDER BY id LIMIT 1000`, after)
		if err != nil {
			return fmt.Errorf("reading tasks: %w", err)
		}
		if len(tasks) == 0 {
			return nil
		}
		for _, task := range tasks {
			if err := t.putTaskList(task, false); err != nil {
				return fmt.Errorf("writing the listing row of task %s: %w", task.ID, err)
			}
		}
		after = tasks[len(tasks)-1].ID
	}
}

// TaskPage runs a TaskPageQuery: the page's ids from task_list, then their
// documents.
func (t *sqlTx) TaskPage(q TaskPageQuery) ([]*api.Task, error) {
	where := []string{"company = ?"}
	if t.s.dialect == "sqlite" && scans(q) {
		// Another order reads every row anyway: in table order (a scan)
		// that costs half of what it does in the order of the created
		// index, which SQLite would choose.
		where[0] = "+company = ?"
	}
	args := []any{q.Company}
	for _, f := range []struct {
		col string
		f   TermFilter
	}{{"status", q.Status}, {"project", q.Project}, {"user_id", q.User}, {"type", q.Type}} {
		if len(f.f.Include) == 1 {
			// An equality, which the planner matches to an index whose
			// next column is the order (project, last update).
			where, args = append(where, f.col+" = ?"), append(args, f.f.Include[0])
		} else if len(f.f.Include) > 0 {
			cond, arg, err := t.inList(f.col, f.f.Include)
			if err != nil {
				return nil, err
			}
			where, args = append(where, cond), append(args, arg)
		}
		if len(f.f.Exclude) > 0 {
			cond, arg, err := t.inList(f.col, f.f.Exclude)
			if err != nil {
				return nil, err
			}
			where, args = append(where, "NOT "+cond), append(args, arg)
		}
	}
	// contains and lacks test a list or text column for a value. On
	// PostgreSQL "lacks" is written NOT (... > 0): the planner guesses that
	// an equality keeps one row in 200, and would then sort the whole
	// table rather than walk the created index to the first page.
	contains, lacks := "instr(%s, ?) > 0", "instr(%s, ?) = 0"
	if t.s.dialect == "postgres" {
		contains, lacks = "strpos(%s, ?) > 0", "NOT (strpos(%s, ?) > 0)"
	}
	for _, f := range []struct {
		col string
		f   TermFilter
	}{{"tags", q.Tags}, {"system_tags", q.SystemTags}} {
		if len(f.f.Include) > 0 {
			var alts []string
			for _, v := range f.f.Include {
				alts, args = append(alts, fmt.Sprintf(contains, f.col)), append(args, ","+jsonString(v)+",")
			}
			where = append(where, "("+strings.Join(alts, " OR ")+")")
		}
		for _, v := range f.f.Exclude {
			where, args = append(where, fmt.Sprintf(lacks, f.col)), append(args, ","+jsonString(v)+",")
		}
	}
	if q.HideHidden {
		where, args = append(where, fmt.Sprintf(lacks, "system_tags")), append(args, `,"hidden",`)
	}
	if q.Search != "" && t.s.dialect == "postgres" {
		conds, cargs, err := t.trigramSearchCondition(q.Search)
		if err != nil {
			return nil, fmt.Errorf("listing tasks: searching: %w", err)
		}
		where, args = append(where, conds...), append(args, cargs...)
	} else if q.Search != "" {
		where, args = append(where, fmt.Sprintf(contains, "search")), append(args, q.Search)
		cond, arg, err := t.searchCandidates(q.Search)
		if err != nil {
			return nil, fmt.Errorf("listing tasks: searching: %w", err)
		}
		if cond != "" {
			// A few candidates: looked up by their search rows, not by
			// walking an index of the listing in its order.
			where, args = append(where, cond), append(args, arg)
			where[0] = "+company = ?"
		}
	}
	for _, b := range q.Started {
		cond, bound, err := timeBound("started_us", b)
		if err != nil {
			return nil, err
		}
		where, args = append(where, cond), append(args, bound)
	}
	collate := " COLLATE BINARY"
	if t.s.dialect == "postgres" {
		collate = ` COLLATE "C"`
	}
	var order []string
	for _, o := range q.Order {
		col, ok := orderColumns[o.Field]
		if !ok {
			return nil, fmt.Errorf("listing tasks: cannot sort on %q", o.Field)
		}
		if !strings.HasSuffix(col, "_us") {
			col += collate
		}
		if o.Desc {
			order = append(order, col+" DESC NULLS LAST")
		} else {
			order = append(order, col+" ASC NULLS FIRST")
		}
	}
	order = append(order, "id"+collate+tieDirection(q.Order))
	var ids []string
	parts := []keysetPart{{}} // a page is one query, or two after a cursor
	if q.After != nil {
		var err error
		if parts, err = afterCursor(q, collate); err != nil {
			return nil, err
		}
	}
	for _, p := range parts {
		query := `SELECT id FROM task_list WHERE ` + strings.Join(append(slices.Clip(where), p.conds...), " AND ") +
			` ORDER BY ` + strings.Join(order, ", ") + ` LIMIT ? OFFSET ?`
		page, err := t.pageIDs(query, append(append(slices.Clip(args), p.args...), q.Limit-len(ids), q.Offset)...)
		if err != nil {
			return nil, err
		}
		if ids = append(ids, page...); len(ids) >= q.Limit {
			break
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	tasks, err := t.Tasks(TaskQuery{Company: q.Company, IDs: ids})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*api.Task, len(tasks))
	for _, task := range tasks {
		byID[task.ID] = task
	}
	out := make([]*api.Task, 0, len(ids))
	for _, id := range ids {
		if task := byID[id]; task != nil {
			out = append(out, task)
		}
	}
	return out, nil
}

// tieDirection is the direction of the id that breaks ties in an order:
// the direction of its last field. On PostgreSQL a descending id sorts
// nulls first by default, which is what an ascending index (nulls last)
// read backwards gives; an id is never null.
func tieDirection(order []TaskOrder) string {
	if len(order) > 0 && order[len(order)-1].Desc {
		return " DESC"
	}
	return ""
}

// TimeOrderField reports a sort field whose values are times (int64
// microseconds in a TaskCursor).
func TimeOrderField(field string) bool { return strings.HasSuffix(orderColumns[field], "_us") }

// CursorOf is task's place in a listing ordered on field (one of
// TaskOrderFields), for TaskPageQuery.After.
func CursorOf(task *api.Task, field string) TaskCursor {
	c := TaskCursor{ID: task.ID}
	switch field {
	case "created":
		c.Value = micros(task.Created)
	case "last_update":
		c.Value = micros(task.LastUpdate)
	case "started":
		c.Value = micros(task.Started)
	case "name":
		c.Value = task.Name
	case "status":
		c.Value = task.Status
	case "type":
		c.Value = task.Type
	}
	return c
}

// pageIDs runs a listing query for its ids.
func (t *sqlTx) pageIDs(query string, args ...any) ([]string, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing tasks: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// keysetPart is a condition of a page after a cursor, and its arguments.
type keysetPart struct {
	conds []string
	args  []any
}

// afterCursor is what follows q.After in q's order (one field, then the
// id in the field's direction), as conditions the database can seek to in
// an index rather than read every task before it. After a value in a
// descending order the page continues, past the last value, with the
// tasks that have none (sorted last): a second part, read only when the
// first does not fill the page.
func afterCursor(q TaskPageQuery, collate string) ([]keysetPart, error) {
	if len(q.Order) != 1 || q.Offset != 0 {
		return nil, fmt.Errorf("listing tasks: a cursor needs an order of one field and no offset")
	}
	col, ok := orderColumns[q.Order[0].Field]
	if !ok {
		return nil, fmt.Errorf("listing tasks: cannot sort on %q", q.Order[0].Field)
	}
	if !strings.HasSuffix(col, "_us") {
		col += collate
	}
	id, v := "id"+collate, q.After.Value
	switch {
	case !q.Order[0].Desc && v == nil: // ascending, nulls first
		return []keysetPart{{conds: []string{"(" + col + " IS NOT NULL OR " + id + " > ?)"}, args: []any{q.After.ID}}}, nil
	case !q.Order[0].Desc:
		return []keysetPart{{conds: []string{col + " >= ?", "(" + col + " > ? OR " + id + " > ?)"}, args: []any{v, v, q.After.ID}}}, nil
	case v == nil: // descending, nulls last: only nulls are left
		return []keysetPart{{conds: []string{col + " IS NULL", id + " < ?"}, args: []any{q.After.ID}}}, nil
	default:
		return []keysetPart{
			{conds: []string{col + " <= ?", "(" + col + " < ? OR " + id + " < ?)"}, args: []any{v, v, q.After.ID}},
			{conds: []string{col + " IS NULL"}},
		}, nil
	}
}

// scans reports a listing that cannot walk an index in its order and
// stop after a page. Every field of TaskOrderFields has an index (with the
// id after it for the name, status and type), but an order on status or
// type then another field sorts each group of tasks with one status or
// type, which holds up to most of them: read in table order (a scan), that
// costs half of what it does in the order of an index that does not hold
// the second field. A text search is looked up in the search index when
// it is selective, and walks the order's index when it is not.
func scans(q TaskPageQuery) bool {
	if len(q.Order) < 2 {
		return false
	}
	switch q.Order[0].Field {
	case "status", "type":
		return true
	}
	return false
}

// timeBound is the condition of one date bound on a microsecond column:
// a stored time s (in microseconds) compared with a bound b that may have
// nanoseconds, as the server compares the parsed times.
func timeBound(col string, b TimeBound) (string, int64, error) {
	ns := b.T.UnixNano()
	floor := ns / 1000
	if ns%1000 != 0 && ns < 0 {
		floor-- // division truncates toward zero
	}
	ceil := floor
	if floor*1000 != ns {
		ceil = floor + 1
	}
	cond := col + " IS NOT NULL AND " + col
	switch b.Op {
	case ">=":
		return cond + " >= ?", ceil, nil
	case ">":
		return cond + " > ?", floor, nil
	case "<":
		return cond + " < ?", ceil, nil
	case "<=":
		return cond + " <= ?", floor, nil
	}
	return "", 0, fmt.Errorf("listing tasks: unknown date operator %q", b.Op)
}
