package api

// Model is a model document (reference models.conf): a registered weights
// file with its design, labels and the task that created it.
type Model struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	User        string         `json:"user,omitempty"`
	Company     string         `json:"company"`
	Created     *Time          `json:"created,omitempty"`
	LastUpdate  *Time          `json:"last_update,omitempty"`
	Task        string         `json:"task,omitempty"`
	Parent      string         `json:"parent,omitempty"`
	Project     string         `json:"project,omitempty"`
	Comment     string         `json:"comment,omitempty"`
	Tags        []string       `json:"tags"`
	SystemTags  []string       `json:"system_tags"`
	Framework   string         `json:"framework,omitempty"`
	Design      map[string]any `json:"design,omitempty"`
	Labels      map[string]any `json:"labels,omitempty"`
	URI         string         `json:"uri,omitempty"`
	Ready       bool           `json:"ready"`
	UICache     map[string]any `json:"ui_cache,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	LastIter    *int64         `json:"last_iteration,omitempty"`
	LastMetrics map[string]any `json:"last_metrics,omitempty"`
}

// ModelRequest is the body of models.create, edit and update, and of
// update_for_task (which names the task and optionally override_model_id).
// Pointers tell "absent" from "empty".
type ModelRequest struct {
	Model           string          `json:"model"`
	Task            *string         `json:"task"`
	URI             *string         `json:"uri"`
	Name            *string         `json:"name"`
	Comment         *string         `json:"comment"`
	Tags            *[]string       `json:"tags"`
	SystemTags      *[]string       `json:"system_tags"`
	Framework       *string         `json:"framework"`
	Design          *map[string]any `json:"design"`
	Labels          *map[string]any `json:"labels"`
	Ready           *bool           `json:"ready"`
	Project         *string         `json:"project"`
	Parent          *string         `json:"parent"`
	Iteration       *int64          `json:"iteration"`
	Metadata        *[]MetadataItem `json:"metadata"`
	UICache         *map[string]any `json:"ui_cache"`
	OverrideModelID string          `json:"override_model_id"`
	Force           bool            `json:"force"`
}

// MetadataItem is one model metadata entry (models.add_or_update_metadata).
type MetadataItem struct {
	Key   string `json:"key"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value"`
}

// ModelMetadataRequest is models.add_or_update_metadata's and
// delete_metadata's body.
type ModelMetadataRequest struct {
	Model    string         `json:"model"`
	Metadata []MetadataItem `json:"metadata"`
	Keys     []string       `json:"keys"`
	Replace  bool           `json:"replace_metadata"`
}

// ModelCreateResponse is models.create's data (and update_for_task's when
// it made a model).
type ModelCreateResponse struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

// SetReadyRequest is models.set_ready's body; publish_many takes ids.
type SetReadyRequest struct {
	Model            string     `json:"model"`
	IDs              StringList `json:"ids"`
	ForcePublishTask bool       `json:"force_publish_task"`
	PublishTask      *bool      `json:"publish_task"`
	PublishTasks     *bool      `json:"publish_tasks"`
}

// ModelDeleteRequest is models.delete's body.
type ModelDeleteRequest struct {
	Model string `json:"model"`
	Force bool   `json:"force"`
}

// TaskModelRequest is tasks.add_or_update_model's body (type input|output).
type TaskModelRequest struct {
	Task      string `json:"task"`
	Name      string `json:"name"`
	Model     string `json:"model"`
	Type      string `json:"type"`
	Iteration *int64 `json:"iteration"`
}

// TaskModelRef names one model entry of a task (tasks.delete_models).
type TaskModelRef struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DeleteTaskModelsRequest is tasks.delete_models's body.
type DeleteTaskModelsRequest struct {
	Task   string         `json:"task"`
	Models []TaskModelRef `json:"models"`
}

// RuntimeProperty is one worker runtime property (the enterprise server's
// workers.get_runtime_properties / set_runtime_properties). Expiry is in
// seconds from the time it was set; 0 or absent means it does not expire.
type RuntimeProperty struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Expiry *int64 `json:"expiry,omitempty"`
}

// RuntimePropertiesRequest is the body of both runtime-property endpoints.
type RuntimePropertiesRequest struct {
	Worker            string            `json:"worker"`
	RuntimeProperties []RuntimeProperty `json:"runtime_properties"`
}

// TaskMetricVariants selects a task's metric (and some of its variants) in
// the debug-image and plot readers.
type TaskMetricVariants struct {
	Task     string     `json:"task"`
	Metric   *string    `json:"metric"`
	Variants StringList `json:"variants"`
}

// DebugImagesRequest is events.debug_images's body (2.14+ form).
type DebugImagesRequest struct {
	Metrics         []TaskMetricVariants `json:"metrics"`
	Iters           *int                 `json:"iters"`
	NavigateEarlier *bool                `json:"navigate_earlier"`
	Refresh         bool                 `json:"refresh"`
	ScrollID        string               `json:"scroll_id"`
	ModelEvents     bool                 `json:"model_events"`
}

// IterationEvents groups one iteration's events.
type IterationEvents struct {
	Iter   int64            `json:"iter"`
	Events []map[string]any `json:"events"`
}

// MetricEvents is one requested task metric's iterations.
type MetricEvents struct {
	Task       string            `json:"task"`
	Metric     string            `json:"metric"`
	Iterations []IterationEvents `json:"iterations"`
}

// DebugImagesResponse is events.debug_images's data.
type DebugImagesResponse struct {
	Metrics  []MetricEvents `json:"metrics"`
	ScrollID string         `json:"scroll_id"`
}

// TaskPlotsRequest is events.get_task_plots's body.
type TaskPlotsRequest struct {
	Task        string     `json:"task"`
	Iters       *int       `json:"iters"`
	ScrollID    string     `json:"scroll_id"`
	NoScroll    bool       `json:"no_scroll"`
	Metrics     []MetricVs `json:"metrics"`
	ModelEvents bool       `json:"model_events"`
}

// MetricVs names a metric and some of its variants.
type MetricVs struct {
	Metric   string     `json:"metric"`
	Variants StringList `json:"variants"`
}

// TaskPlotsResponse is events.get_task_plots's data.
type TaskPlotsResponse struct {
	Plots    []map[string]any `json:"plots"`
	Returned int              `json:"returned"`
	Total    int              `json:"total"`
	ScrollID string           `json:"scroll_id"`
}
