package api

// Task statuses.
const (
	StatusCreated    = "created"
	StatusQueued     = "queued"
	StatusInProgress = "in_progress"
	StatusStopped    = "stopped"
	StatusPublished  = "published"
	StatusPublishing = "publishing"
	StatusClosed     = "closed"
	StatusFailed     = "failed"
	StatusCompleted  = "completed"
	StatusUnknown    = "unknown"
)

// TaskTypes are the task type names the server accepts.
var TaskTypes = []string{"training", "testing", "inference", "data_processing", "application",
	"monitor", "controller", "optimizer", "service", "qc", "custom", "report"}

// Task is the task document (reference section 3.1). Free-form sections are
// kept as generic maps so that unknown keys round-trip unchanged.
type Task struct {
	ID               string                          `json:"id"`
	Name             string                          `json:"name"`
	User             string                          `json:"user,omitempty"`
	Company          string                          `json:"company"`
	Type             string                          `json:"type,omitempty"`
	Status           string                          `json:"status"`
	StatusReason     string                          `json:"status_reason"`
	StatusMessage    string                          `json:"status_message"`
	StatusChanged    *Time                           `json:"status_changed,omitempty"`
	Comment          string                          `json:"comment,omitempty"`
	Created          *Time                           `json:"created,omitempty"`
	Started          *Time                           `json:"started,omitempty"`
	Completed        *Time                           `json:"completed,omitempty"`
	Published        *Time                           `json:"published,omitempty"`
	ActiveDuration   *int64                          `json:"active_duration,omitempty"`
	Parent           string                          `json:"parent,omitempty"`
	Project          string                          `json:"project,omitempty"`
	Output           map[string]any                  `json:"output,omitempty"`
	Execution        map[string]any                  `json:"execution,omitempty"`
	Script           map[string]any                  `json:"script,omitempty"`
	Container        map[string]string               `json:"container,omitempty"`
	Models           map[string]any                  `json:"models,omitempty"`
	Hyperparams      map[string]map[string]ParamItem `json:"hyperparams,omitempty"`
	Configuration    map[string]ConfigItem           `json:"configuration,omitempty"`
	Runtime          map[string]any                  `json:"runtime,omitempty"`
	Tags             []string                        `json:"tags"`
	SystemTags       []string                        `json:"system_tags"`
	LastWorker       string                          `json:"last_worker,omitempty"`
	LastWorkerReport *Time                           `json:"last_worker_report,omitempty"`
	LastUpdate       *Time                           `json:"last_update,omitempty"`
	LastChange       *Time                           `json:"last_change,omitempty"`
	LastChangedBy    string                          `json:"last_changed_by,omitempty"`
	LastIteration    int64                           `json:"last_iteration"`
	LastMetrics      map[string]any                  `json:"last_metrics,omitempty"`
	// EnqueueStatus is the status before the last enqueue. It is stored but
	// never returned to clients.
	EnqueueStatus string `json:"enqueue_status,omitempty"`
}

// HiddenTaskFields are stored but never returned.
var HiddenTaskFields = []string{"enqueue_status"}

// ParamItem is one hyper-parameter.
type ParamItem struct {
	Section     string `json:"section"`
	Name        string `json:"name"`
	Value       string `json:"value"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
}

// ConfigItem is one configuration object.
type ConfigItem struct {
	Name        string `json:"name"`
	Value       string `json:"value"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
}

// QueueEntry is one task waiting in a queue.
type QueueEntry struct {
	Task  string `json:"task"`
	Added Time   `json:"added"`
	// Lease is the hand-out id of a popped entry (from the answer's lease,
	// see GetNextTaskResponse), for the client; never sent.
	Lease string `json:"-"`
}

// Queue is a queue document.
type Queue struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	DisplayName string         `json:"display_name,omitempty"`
	Company     string         `json:"company"`
	User        string         `json:"user,omitempty"`
	Created     *Time          `json:"created,omitempty"`
	LastUpdate  *Time          `json:"last_update,omitempty"`
	Tags        []string       `json:"tags"`
	SystemTags  []string       `json:"system_tags"`
	Entries     []QueueEntry   `json:"entries"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// Project is a project document.
type Project struct {
	ID                       string   `json:"id"`
	Name                     string   `json:"name"`
	Basename                 string   `json:"basename,omitempty"`
	Description              string   `json:"description"`
	User                     string   `json:"user,omitempty"`
	Company                  string   `json:"company"`
	Created                  *Time    `json:"created,omitempty"`
	LastUpdate               *Time    `json:"last_update,omitempty"`
	Tags                     []string `json:"tags"`
	SystemTags               []string `json:"system_tags"`
	DefaultOutputDestination string   `json:"default_output_destination,omitempty"`
	Parent                   string   `json:"parent,omitempty"`
}

// IDName is a reference to an object with its display name.
type IDName struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Worker is a worker entry as stored; get_all expands it (WorkerView).
type Worker struct {
	Key              string         `json:"key"`
	ID               string         `json:"id"`
	User             IDName         `json:"user"`
	Company          IDName         `json:"company"`
	IP               string         `json:"ip,omitempty"`
	RegisterTime     *Time          `json:"register_time,omitempty"`
	RegisterTimeout  int64          `json:"register_timeout"`
	LastActivityTime *Time          `json:"last_activity_time,omitempty"`
	LastReportTime   *Time          `json:"last_report_time,omitempty"`
	Task             *IDName        `json:"task,omitempty"`
	Project          *IDName        `json:"project,omitempty"`
	Queue            string         `json:"queue,omitempty"`
	Queues           []string       `json:"queues"`
	Tags             []string       `json:"tags"`
	SystemTags       []string       `json:"system_tags"`
	MachineStats     map[string]any `json:"machine_stats,omitempty"`
}

// User is a user account of the embedded server.
type User struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Company string `json:"company"`
	Created *Time  `json:"created,omitempty"`
}

// Identity is what a token says about its holder.
type Identity struct {
	User        string `json:"user"`
	Company     string `json:"company"`
	Role        string `json:"role"`
	UserName    string `json:"user_name"`
	CompanyName string `json:"company_name"`
}
