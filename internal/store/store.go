// Package store persists the embedded server's documents (tasks, queues,
// projects, workers, events, users) behind one transactional interface, with
// two SQL back ends: SQLite (the single-machine default, pure Go) and
// PostgreSQL (several server replicas on one database).
//
// Documents are stored as JSON next to the few columns that queries and
// constraints need. Every multi-step change runs inside Update, which gives
// the caller exclusive access to the rows it reads (SQLite: one writer at a
// time; PostgreSQL: row locks taken by Task and by the queue operations), so
// the server's business rules can be written once in Go for both databases.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// ErrNotFound is returned when a document does not exist.
var ErrNotFound = errors.New("not found")

// Store is a transactional document store.
type Store interface {
	// Update runs fn in a read-write transaction. Rows read through the Tx
	// stay locked until fn returns. fn may run more than once when the
	// database reports a serialization conflict, so it must not have side
	// effects outside the Tx.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn with read access, without taking locks.
	View(ctx context.Context, fn func(Tx) error) error
	// LeaseHead runs Tx.LeaseHead in a transaction of its own (the
	// cheapest way on each back end); the task's row is not locked after.
	LeaseHead(ctx context.Context, queueID, company string, l Lease) (*api.QueueEntry, string, error)
	// Dialect names the back end ("sqlite" or "postgres").
	Dialect() string
	Close() error
}

// TaskQuery narrows a task listing on the indexed columns; the server applies
// the remaining filters to the documents.
type TaskQuery struct {
	Company  string
	IDs      []string
	Statuses []string
	Projects []string
	// UpdatedBefore selects tasks whose last update is older (watchdog).
	UpdatedBefore *time.Time
}

// ModelQuery narrows a model listing on the indexed columns, as TaskQuery
// does for tasks; nil lists do not filter, empty lists match nothing.
type ModelQuery struct {
	Company  string
	IDs      []string
	Tasks    []string
	Projects []string
}

// WorkerProperty is one runtime property of a worker. Expires is zero for
// a property that does not expire.
type WorkerProperty struct {
	Key     string
	Value   string
	Expires time.Time
}

// WorkerStat is the machine statistics of one status report.
type WorkerStat struct {
	Worker string
	Time   time.Time
	Stats  json.RawMessage
}

// Event is one stored event.
type Event struct {
	Seq       int64
	TaskID    string
	Type      string
	Timestamp int64 // epoch milliseconds
	Iter      int64
	Metric    string
	Variant   string
	// Key identifies a metric point: a new event with the same key replaces
	// the old one. Empty for log events, which are always appended.
	Key string
	Doc json.RawMessage
}

// EventQuery selects events of one task, ordered by (timestamp, seq).
type EventQuery struct {
	TaskID string
	Types  []string
	Desc   bool
	// After, when set, continues strictly after this (timestamp, seq) cursor
	// in the query's direction. Seq 0 with Desc=false means "after every
	// event with this timestamp"; with Desc=true, "before every event with
	// this timestamp".
	After *EventCursor
	Limit int
}

// EventCursor is a position in a task's event stream.
type EventCursor struct {
	Timestamp int64
	Seq       int64
}

// Tx is the set of operations available inside a transaction.
type Tx interface {
	Meta(key string) (string, error)
	SetMeta(key, value string) error

	User(id string) (*api.User, error)
	Users(company string) ([]*api.User, error)
	PutUser(u *api.User) error
	// Credential returns the user id and secret hash of an access key.
	Credential(accessKey string) (userID, secretHash string, err error)
	PutCredential(accessKey, secretHash, userID string) error

	// RevokeSession records a login session as ended until expires, when
	// its tokens would have expired anyway.
	RevokeSession(sessionID string, expires time.Time) error
	// RevokedSessions lists the ended sessions that have not expired at
	// now, with their expiry.
	RevokedSessions(now time.Time) (map[string]time.Time, error)
	// DeleteExpiredRevocations forgets the ended sessions expired at now.
	DeleteExpiredRevocations(now time.Time) (int, error)

	// Task reads a task; inside Update the row stays locked.
	Task(id string) (*api.Task, error)
	// TaskStatus reads only a task's status and company (cheap: no
	// document decoding); inside Update the row stays locked.
	TaskStatus(id string) (status, company string, err error)
	PutTask(t *api.Task) error
	DeleteTask(id string) error
	Tasks(q TaskQuery) ([]*api.Task, error)
	// TaskPage lists one page of tasks, filtered, sorted and paged by the
	// database (task_list.go).
	TaskPage(q TaskPageQuery) ([]*api.Task, error)

	Project(id string) (*api.Project, error)
	Projects(company string) ([]*api.Project, error)
	// InsertProject adds a project; false when the name is taken.
	InsertProject(p *api.Project) (bool, error)
	PutProject(p *api.Project) error
	DeleteProject(id string) error

	Queue(id string) (*api.Queue, error)
	// QueueCompany reads only a queue's company (an existence check that
	// decodes no document).
	QueueCompany(id string) (string, error)
	Queues(company string) ([]*api.Queue, error)
	// InsertQueue adds a queue; false when the name is taken.
	InsertQueue(q *api.Queue) (bool, error)
	PutQueue(q *api.Queue) error
	DeleteQueue(id string) error
	// AddEntry appends a task to a queue; false when it is there already.
	AddEntry(queueID, taskID string, added api.Time) (bool, error)
	// EnqueueEntry appends a task to a company's queue and removes it from
	// every other queue; false (and nothing changed) when it is in that
	// queue already; ErrNotFound when the queue is not the company's (or
	// not there at all).
	EnqueueEntry(queueID, company, taskID string, added api.Time) (bool, error)
	// RemoveEntry removes a task from one queue and says how many entries went.
	RemoveEntry(queueID, taskID string) (int, error)
	// RemoveTaskEntries removes a task from every queue except exceptQueue.
	RemoveTaskEntries(taskID, exceptQueue string) (int, error)
	// PopEntry atomically removes and returns the head of a queue, or nil
	// when it is empty. Concurrent callers never get the same entry.
	PopEntry(queueID string) (*api.QueueEntry, error)
	// LeaseHead takes the head of a company's queue like PopEntry, leases
	// it to a worker (leases.go) and reads its task's status (inside
	// Update the task's row stays locked; "" when the task is gone). The
	// entry is nil when the queue is empty and when it is not the
	// company's (or not there at all): QueueCompany tells them apart.
	LeaseHead(queueID, company string, l Lease) (*api.QueueEntry, string, error)
	// TaskLease reads a task's latest hand-out; ErrNotFound when it has none.
	TaskLease(taskID string) (*Lease, error)
	// SetLeaseState records what became of a task's hand-out.
	SetLeaseState(taskID, state string) error
	// AckLease marks a task's held hand-out acknowledged, to be forgotten
	// at forgetAt (ForgetLeases).
	AckLease(taskID string, forgetAt time.Time) error
	// ForgetLeases deletes the acknowledged hand-outs due at now.
	ForgetLeases(now time.Time) (int, error)
	// DropLease forgets a task's hand-out, which became moot.
	DropLease(taskID string) error
	// DueLeases lists up to limit hand-outs still waiting for their
	// acknowledgement at now; inside Update they stay locked, and on
	// PostgreSQL rows another transaction holds are skipped.
	DueLeases(now time.Time, limit int) ([]Lease, error)
	// RestoreEntry puts a leased task back in its queue at the position it
	// was handed out from; false when the task is in that queue already.
	RestoreEntry(l Lease) (bool, error)
	// Entries lists a queue head first; limit <= 0 means all.
	Entries(queueID string, limit int) ([]api.QueueEntry, error)
	CountEntries(queueID string) (int, error)
	// MoveEntry moves a task to position index (0 is the head; clamped to
	// the queue) of a queue and returns its new position; ErrNotFound when
	// the task is not in the queue. Inside Update the queue's entries stay
	// locked.
	MoveEntry(queueID, taskID string, index int) (int, error)
	// TaskQueues lists the queues a task waits in.
	TaskQueues(taskID string) ([]string, error)

	Worker(company, user, id string) (*api.Worker, error)
	PutWorker(w *api.Worker, expires time.Time) error
	DeleteWorker(company, user, id string) error
	// Workers lists the entries that have not expired at now.
	Workers(company string, now time.Time) ([]*api.Worker, error)
	DeleteExpiredWorkers(now time.Time) (int, error)

	// Model reads a model; inside Update the row stays locked.
	Model(id string) (*api.Model, error)
	PutModel(m *api.Model) error
	DeleteModel(id string) error
	Models(q ModelQuery) ([]*api.Model, error)

	// WorkerProperties lists a worker's runtime properties that have not
	// expired at now, by key.
	WorkerProperties(company, worker string, now time.Time) ([]WorkerProperty, error)
	// PutWorkerProperty sets one property, replacing its value and expiry.
	PutWorkerProperty(company, worker string, p WorkerProperty) error

	// AddWorkerStats records the machine statistics of a status report
	// and forgets the worker's statistics older than keepFrom.
	AddWorkerStats(company, worker string, at time.Time, stats json.RawMessage, keepFrom time.Time) error
	// WorkerStats lists the statistics of the workers (all of the
	// company's when nil) recorded in [from, to], oldest first.
	WorkerStats(company string, workers []string, from, to time.Time) ([]WorkerStat, error)

	AddEvent(e *Event) error
	Events(q EventQuery) ([]Event, error)
	CountEvents(taskID string, types []string) (int, error)
	// CountEventsMax is CountEvents, counting no further than max.
	CountEventsMax(taskID string, types []string, max int) (int, error)
	DeleteEvents(taskID string) (int, error)
}
