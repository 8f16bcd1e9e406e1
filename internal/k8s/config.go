// Package k8s is the Kubernetes executor (`clearml-agent k8s`): one
// process, a ClearML worker of its own, that pops tasks from its queues in
// priority order and turns each into a Pod (or a batch/v1 Job) through
// client-go. It follows its pods with shared informers: a pending pod's
// reason becomes the task's status message, failures (image pulls,
// pending timeouts, OOM kills, evictions, non-zero exits, lost nodes) fail
// the task with the reason, warning events go to the task log, and a task
// stopped while its pod is pending gets its pod deleted. The pod runs this
// very binary (copied in by an init container) as `execute
// --full-monitoring`, which streams the log and handles aborts.
package k8s

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/goclearml/agent/internal/docker"
)

// Kinds of object made per task.
const (
	KindPod = "pod"
	KindJob = "job"
)

// Defaults, as upstream's glue has them where it has them.
const (
	DefaultNamespace     = "clearml"
	DefaultPrefix        = "clearml-id-"
	DefaultPendingQueue  = "k8s_scheduler"
	DefaultSecretName    = "clearml-agent-credentials"
	DefaultAgentBinary   = "/usr/local/bin/clearml-agent"
	DefaultPullTimeout   = 2 * time.Minute
	DefaultKeepFinished  = 10 * time.Minute
	pendingQueueTag      = "k8s-glue"
	pendingStatusReason  = "k8s pending scheduler"
	mountDir             = "/opt/clearml-agent"
	initContainerName    = "clearml-agent-init"
	defaultContainerName = "clearml-task"
)

// Labels and annotations on every pod and job.
const (
	LabelTask      = "clearml-task-id"
	LabelQueue     = "clearml-agent-queue"
	LabelQueueName = "clearml-agent-queue-name"
	AnnoWorker     = "clearml.allegro.ai/worker-id"
	AnnoQueueName  = "clearml.allegro.ai/queue-name"
)

// Queue is one queue's settings (agent.k8s.queues.<name>).
type Queue struct {
	// Template replaces the executor's template for this queue's tasks.
	Template *corev1.Pod
	// MaxPods caps this queue's pods (0: only the global cap).
	MaxPods int
}

// Config is the executor's configuration: flags, environment and
// clearml.conf, read and checked by the command line.
type Config struct {
	Namespace    string
	Queues       []string
	CreateQueue  bool
	PendingQueue string
	Kind         string
	// Template is the pod template for every queue without its own (nil:
	// an empty pod).
	Template *corev1.Pod
	// PerQueue settings, by queue name (case-insensitive) or id.
	PerQueue map[string]Queue
	// MaxPods caps this executor's unfinished pods (0: no cap).
	MaxPods       int
	PodNamePrefix string
	// LimitLabel is KEY=VALUE on every pod of this executor; its pods are
	// found (after a restart too) and counted by it.
	LimitLabel    string
	UseOwnerToken bool
	WorkerID      string
	// AgentImage holds this binary at AgentBinary: the pods' init
	// container copies it into the task's container.
	AgentImage      string
	AgentBinary     string
	AgentPullPolicy corev1.PullPolicy
	PollInterval    time.Duration
	// PendingTimeout fails a task whose pod is still pending after it (0:
	// never). ImagePullTimeout fails one whose image cannot be pulled for
	// that long.
	PendingTimeout   time.Duration
	ImagePullTimeout time.Duration
	// KeepFinished is how long finished pods are kept before deletion.
	KeepFinished time.Duration
	// SecretName is the Secret with the pods' API credentials; the
	// executor creates it from its own credentials when it is missing.
	SecretName string
	// APIServer, WebServer and FilesServer are the addresses the pods use.
	APIServer, WebServer, FilesServer string
	// AccessKey and SecretKey are the executor's credentials (written to
	// the Secret when it is created); GitUser and GitPass too.
	AccessKey, SecretKey string
	GitUser, GitPass     string
	// Selection chooses each task's image and merges docker arguments.
	Selection docker.Selection
	// Init is the container set-up (agent.extra_docker_shell_script and
	// the like); the task's own setup script is added per task.
	Init docker.InitOptions
	// ForcePull is agent.docker_force_pull (imagePullPolicy Always).
	ForcePull bool
	// ExecuteArgs are added to the pods' execute command (--log-level ...).
	ExecuteArgs []string
	Log         *slog.Logger
	Now         func() time.Time
}

var dnsLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })

// Check fills in defaults and refuses what cannot work, with a one-line
// error naming the setting.
func (c *Config) Check() error {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.PendingQueue == "" {
		c.PendingQueue = DefaultPendingQueue
	}
	if c.PodNamePrefix == "" {
		c.PodNamePrefix = DefaultPrefix
	}
	if c.SecretName == "" {
		c.SecretName = DefaultSecretName
	}
	if c.AgentBinary == "" {
		c.AgentBinary = DefaultAgentBinary
	}
	if c.ImagePullTimeout <= 0 {
		c.ImagePullTimeout = DefaultPullTimeout
	}
	if c.KeepFinished < 0 {
		c.KeepFinished = 0
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch c.Kind {
	case "":
		c.Kind = KindPod
	case KindPod, KindJob:
	default:
		return fmt.Errorf("CLEARML_K8S_GLUE_KIND %q: use pod or job", c.Kind)
	}
	if !dnsLabel().MatchString(c.Namespace) || len(c.Namespace) > 63 {
		return fmt.Errorf("namespace %q is not a valid Kubernetes namespace name", c.Namespace)
	}
	// Job names become a label value: 63 characters at most.
	if !dnsLabel().MatchString(strings.TrimSuffix(c.PodNamePrefix, "-")+"-x") || len(c.PodNamePrefix)+32 > 63 {
		return fmt.Errorf("--pod-name-prefix %q: use lowercase letters, digits and '-', at most 31 characters", c.PodNamePrefix)
	}
	if c.LimitLabel == "" {
		sum := md5.Sum([]byte(c.WorkerID))
		c.LimitLabel = "CLEARML=agent-" + hex.EncodeToString(sum[:])[:8]
	}
	k, v, ok := strings.Cut(c.LimitLabel, "=")
	if !ok || !validLabelKey(k) || !validLabelValue(v) {
		return fmt.Errorf("--limit-pod-label %q: expected KEY=VALUE with a valid label key and value", c.LimitLabel)
	}
	if c.AgentImage == "" {
		return fmt.Errorf("no agent image: set --agent-image, CLEARML_K8S_AGENT_IMAGE or agent.k8s.agent_image "+
			"(an image holding this binary at %s)", c.AgentBinary)
	}
	if err := docker.ValidImage(c.AgentImage); err != nil {
		return fmt.Errorf("agent image: %w", err)
	}
	if c.APIServer == "" {
		return fmt.Errorf("no API server address for the pods (agent.k8s.api_server or api.api_server)")
	}
	if c.MaxPods < 0 {
		return fmt.Errorf("--max-pods must not be negative")
	}
	for name, q := range c.PerQueue {
		if q.MaxPods < 0 {
			return fmt.Errorf("agent.k8s.queues.%s.max_pods must not be negative", name)
		}
	}
	return nil
}

var labelKeyRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
})
var labelValueRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`) })

func validLabelKey(k string) bool   { return len(k) <= 316 && labelKeyRE().MatchString(k) }
func validLabelValue(v string) bool { return len(v) <= 63 && labelValueRE().MatchString(v) }

// labelValue turns s into a valid label value (queue names).
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	out := strings.Trim(string(b), "-_.")
	if len(out) > 63 {
		out = strings.Trim(out[:63], "-_.")
	}
	return out
}

// ObjectName is the pod's (or job's) name for a task: one per task.
func (c *Config) ObjectName(taskID string) string { return c.PodNamePrefix + strings.ToLower(taskID) }

// queueSettings returns the settings of a queue.
func (c *Config) queueSettings(id, name string) Queue {
	for k, q := range c.PerQueue {
		if strings.EqualFold(k, name) || k == id {
			return q
		}
	}
	return Queue{}
}
