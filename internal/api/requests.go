package api

// Request and response bodies. Optional fields are pointers only where the
// difference between "absent" and "zero" matters to the semantics.

// LoginResponse is auth.login's data.
type LoginResponse struct {
	Token string `json:"token"`
}

// LoginRequest is auth.login's body (sent as a query parameter by clients).
type LoginRequest struct {
	ExpirationSec *int64 `json:"expiration_sec"`
}

// GetAllRequest holds the paging and projection fields shared by the get_all
// endpoints. Filters are read from the raw body by the server.
type GetAllRequest struct {
	ID           StringList `json:"id"`
	Name         *string    `json:"name"`
	OnlyFields   []string   `json:"only_fields"`
	OrderBy      StringList `json:"order_by"`
	Page         *int       `json:"page"`
	PageSize     *int       `json:"page_size"`
	SearchHidden bool       `json:"search_hidden"`
	SearchText   string     `json:"search_text"`
	Size         *int       `json:"size"`
	ScrollID     *string    `json:"scroll_id"`
}

// IDResponse is the response of create endpoints.
type IDResponse struct {
	ID string `json:"id"`
}

// UpdateResponse is the response of update endpoints.
type UpdateResponse struct {
	Updated int            `json:"updated"`
	Fields  map[string]any `json:"fields"`
}

// ProjectCreateRequest is projects.create's body.
type ProjectCreateRequest struct {
	Name                     string   `json:"name"`
	Description              string   `json:"description"`
	Tags                     []string `json:"tags"`
	SystemTags               []string `json:"system_tags"`
	DefaultOutputDestination string   `json:"default_output_destination"`
}

// ProjectUpdateRequest is projects.update's body.
type ProjectUpdateRequest struct {
	Project                  string    `json:"project"`
	Name                     *string   `json:"name"`
	Description              *string   `json:"description"`
	Tags                     *[]string `json:"tags"`
	SystemTags               *[]string `json:"system_tags"`
	DefaultOutputDestination *string   `json:"default_output_destination"`
}

// QueueCreateRequest is queues.create's body.
type QueueCreateRequest struct {
	Name        string         `json:"name"`
	DisplayName string         `json:"display_name"`
	Tags        []string       `json:"tags"`
	SystemTags  []string       `json:"system_tags"`
	Metadata    map[string]any `json:"metadata"`
}

// QueueUpdateRequest is queues.update's body.
type QueueUpdateRequest struct {
	Queue       string         `json:"queue"`
	Name        *string        `json:"name"`
	DisplayName *string        `json:"display_name"`
	Tags        *[]string      `json:"tags"`
	SystemTags  *[]string      `json:"system_tags"`
	Metadata    map[string]any `json:"metadata"`
}

// QueueTaskRequest names a queue and a task (add_task, remove_task, get_next_task).
type QueueTaskRequest struct {
	Queue                string `json:"queue"`
	Task                 string `json:"task"`
	GetTaskInfo          bool   `json:"get_task_info"`
	UpdateExecutionQueue *bool  `json:"update_execution_queue"`
	UpdateTaskStatus     bool   `json:"update_task_status"`
	MaxTaskEntries       *int   `json:"max_task_entries"`
	Force                bool   `json:"force"`
	// WaitMS is our extension of queues.get_next_task: wait up to this many
	// milliseconds for a task when the queue is empty (long poll). Servers
	// that do not know it ignore it and answer at once.
	WaitMS int `json:"wait_ms"`
}

// GetNextTaskResponse is queues.get_next_task's data when a task was popped.
type GetNextTaskResponse struct {
	Entry    *QueueEntry     `json:"entry,omitempty"`
	TaskInfo *map[string]any `json:"task_info,omitempty"`
	// Lease is our extension ("lease" in server.info): the hand-out is
	// final only once tasks.started names it before it expires.
	Lease *Lease `json:"lease,omitempty"`
}

// Lease identifies a hand-out of queues.get_next_task.
type Lease struct {
	ID         string  `json:"id"`
	TimeoutSec float64 `json:"timeout_sec"`
}

// StatusChangeRequest is the body shared by the status-changing endpoints.
type StatusChangeRequest struct {
	Task          string `json:"task"`
	Force         bool   `json:"force"`
	StatusReason  string `json:"status_reason"`
	StatusMessage string `json:"status_message"`
	// Lease (our extension, tasks.started) acknowledges the hand-out of
	// queues.get_next_task that gave the task to the caller.
	Lease string `json:"lease"`
	// endpoint-specific extras
	Publish              bool    `json:"publish"`
	Queue                string  `json:"queue"`
	QueueName            string  `json:"queue_name"`
	VerifyWatchedQueue   bool    `json:"verify_watched_queue"`
	UpdateExecutionQueue *bool   `json:"update_execution_queue"`
	NewStatus            *string `json:"new_status"`
	RemoveFromAllQueues  bool    `json:"remove_from_all_queues"`
	ClearAll             bool    `json:"clear_all"`
	ReturnFileURLs       bool    `json:"return_file_urls"`
	DeleteOutputModels   *bool   `json:"delete_output_models"`
	MoveToTrash          bool    `json:"move_to_trash"`
	PublishModel         *bool   `json:"publish_model"`
}

// TaskCreateRequest is tasks.create's body (also the editable fields of tasks.edit).
type TaskCreateRequest struct {
	Task          string                           `json:"task"`
	Force         bool                             `json:"force"`
	Name          *string                          `json:"name"`
	Type          *string                          `json:"type"`
	Tags          *[]string                        `json:"tags"`
	SystemTags    *[]string                        `json:"system_tags"`
	Comment       *string                          `json:"comment"`
	Parent        *string                          `json:"parent"`
	Project       *string                          `json:"project"`
	OutputDest    *string                          `json:"output_dest"`
	Execution     map[string]any                   `json:"execution"`
	Script        map[string]any                   `json:"script"`
	Hyperparams   *map[string]map[string]ParamItem `json:"hyperparams"`
	Configuration *map[string]ConfigItem           `json:"configuration"`
	Models        map[string]any                   `json:"models"`
	Container     *map[string]*string              `json:"container"`
	Runtime       *map[string]any                  `json:"runtime"`
}

// TaskCloneRequest is tasks.clone's body.
type TaskCloneRequest struct {
	Task                 string                           `json:"task"`
	NewTaskName          *string                          `json:"new_task_name"`
	NewTaskComment       *string                          `json:"new_task_comment"`
	NewTaskTags          *[]string                        `json:"new_task_tags"`
	NewTaskSystemTags    *[]string                        `json:"new_task_system_tags"`
	NewTaskParent        *string                          `json:"new_task_parent"`
	NewTaskProject       *string                          `json:"new_task_project"`
	NewTaskHyperparams   *map[string]map[string]ParamItem `json:"new_task_hyperparams"`
	NewTaskConfiguration *map[string]ConfigItem           `json:"new_task_configuration"`
	ExecutionOverrides   map[string]any                   `json:"execution_overrides"`
	NewTaskContainer     *map[string]string               `json:"new_task_container"`
	NewProjectName       *string                          `json:"new_project_name"`
}

// TaskUpdateRequest is tasks.update's body.
type TaskUpdateRequest struct {
	Task          string    `json:"task"`
	Name          *string   `json:"name"`
	Tags          *[]string `json:"tags"`
	SystemTags    *[]string `json:"system_tags"`
	Comment       *string   `json:"comment"`
	Project       *string   `json:"project"`
	StatusMessage *string   `json:"status_message"`
	OutputError   *string   `json:"output__error"`
}

// TaskRequest names one task.
type TaskRequest struct {
	Task string `json:"task"`
}

// SetRequirementsRequest is tasks.set_requirements's body.
type SetRequirementsRequest struct {
	Task         string         `json:"task"`
	Requirements map[string]any `json:"requirements"`
}

// TasksRequest names several tasks (hyper-parameter and configuration reads).
type TasksRequest struct {
	Tasks     StringList `json:"tasks"`
	Names     StringList `json:"names"`
	SkipEmpty *bool      `json:"skip_empty"`
}

// EditHyperParamsRequest is tasks.edit_hyper_params's and delete_hyper_params's body.
type EditHyperParamsRequest struct {
	Task               string      `json:"task"`
	Hyperparams        []ParamItem `json:"hyperparams"`
	ReplaceHyperparams string      `json:"replace_hyperparams"`
	Force              bool        `json:"force"`
}

// EditConfigurationRequest is tasks.edit_configuration's body.
type EditConfigurationRequest struct {
	Task                 string       `json:"task"`
	Configuration        []ConfigItem `json:"configuration"`
	ReplaceConfiguration bool         `json:"replace_configuration"`
	Force                bool         `json:"force"`
}

// DeleteConfigurationRequest is tasks.delete_configuration's body.
type DeleteConfigurationRequest struct {
	Task          string     `json:"task"`
	Configuration StringList `json:"configuration"`
	Force         bool       `json:"force"`
}

// ArtifactsRequest is tasks.add_or_update_artifacts's and delete_artifacts's body.
type ArtifactsRequest struct {
	Task      string           `json:"task"`
	Artifacts []map[string]any `json:"artifacts"`
	Force     bool             `json:"force"`
}

// WorkerRequest is the body of workers.register, unregister and status_report.
type WorkerRequest struct {
	Worker       string          `json:"worker"`
	Timeout      *int64          `json:"timeout"`
	Queues       *[]string       `json:"queues"`
	Tags         *[]string       `json:"tags"`
	SystemTags   *[]string       `json:"system_tags"`
	Task         string          `json:"task"`
	Queue        string          `json:"queue"`
	Timestamp    *float64        `json:"timestamp"`
	MachineStats *map[string]any `json:"machine_stats"`
}

// WorkersGetAllRequest is workers.get_all's body.
type WorkersGetAllRequest struct {
	LastSeen      *int64     `json:"last_seen"`
	Tags          StringList `json:"tags"`
	SystemTags    StringList `json:"system_tags"`
	WorkerPattern string     `json:"worker_pattern"`
}

// AddBatchResponse is events.add_batch's data.
type AddBatchResponse struct {
	Added      int            `json:"added"`
	Errors     int            `json:"errors"`
	ErrorsInfo map[string]int `json:"errors_info"`
}

// TaskLogRequest is events.get_task_log's body.
type TaskLogRequest struct {
	Task            string   `json:"task"`
	BatchSize       *int     `json:"batch_size"`
	NavigateEarlier *bool    `json:"navigate_earlier"`
	FromTimestamp   *float64 `json:"from_timestamp"`
	Order           string   `json:"order"`
}

// TaskLogResponse is events.get_task_log's data.
type TaskLogResponse struct {
	Events   []map[string]any `json:"events"`
	Returned int              `json:"returned"`
	Total    int              `json:"total"`
}

// TaskEventsRequest is events.get_task_events's body.
type TaskEventsRequest struct {
	Task      string `json:"task"`
	Order     string `json:"order"`
	ScrollID  string `json:"scroll_id"`
	BatchSize *int   `json:"batch_size"`
	EventType string `json:"event_type"`
}

// TaskEventsResponse is events.get_task_events's data.
type TaskEventsResponse struct {
	Events   []map[string]any `json:"events"`
	Returned int              `json:"returned"`
	Total    int              `json:"total"`
	ScrollID string           `json:"scroll_id"`
}

// ScalarHistogramRequest is events.scalar_metrics_iter_histogram's body.
type ScalarHistogramRequest struct {
	Task    string `json:"task"`
	Samples *int   `json:"samples"`
	Key     string `json:"key"`
}

// QueueMoveRequest is the body of queues.move_task_forward, _backward,
// _to_front and _to_back.
type QueueMoveRequest struct {
	Queue string `json:"queue"`
	Task  string `json:"task"`
	// Count is how many places forward or backward the task moves (1).
	Count *int `json:"count"`
}
