package args

import "strings"

// K8s is the parsed "clearml-agent k8s" command line: upstream's k8s glue
// flags (k8s_glue_example.py) with the same meaning.
type K8s struct {
	// Queues in priority order; upstream takes one comma-separated value,
	// we also take several values (--queue a b, --queue a,b).
	Queues         []string
	Namespace      string // "" = agent.k8s.namespace, else K8S_DEFAULT_NAMESPACE, else "clearml"
	TemplateYAML   string
	OverridesYAML  string
	MaxPods        int // 0: not given
	MaxPodsSet     bool
	PodNamePrefix  string
	LimitPodLabel  string
	UseOwnerToken  bool
	CreateQueue    bool
	PendingQueue   string // --k8s-pending-queue-name
	PollingSeconds float64
	PollingSet     bool
	AgentImage     string
	Kubeconfig     string
	Help           bool
}

// ParseK8s parses the arguments after "k8s". Errors are *Error.
func ParseK8s(args []string) (*K8s, error) {
	k := &K8s{}
	p := newParser(k8sOptions(k), osReadFile)
	if _, err := p.parseAll(args); err != nil {
		return nil, err
	}
	var qs []string
	for _, q := range k.Queues {
		for _, part := range strings.Split(q, ",") {
			if part = strings.TrimSpace(part); part != "" {
				qs = append(qs, part)
			}
		}
	}
	k.Queues = qs
	return k, nil
}

// K8sUsage is the help text of "clearml-agent k8s".
func K8sUsage() string {
	return formatHelp("clearml-agent k8s", "Turn the tasks of ClearML queues into Kubernetes pods (or jobs).",
		`Environment: CLEARML_K8S_GLUE_KIND=job (batch/v1 Jobs instead of Pods), K8S_GLUE_MAX_PODS, K8S_GLUE_QUEUE,
K8S_DEFAULT_NAMESPACE, K8S_GLUE_COMPLETED_POD_DELETION_DELAY_MINUTES, CLEARML_K8S_AGENT_IMAGE, KUBECONFIG.
Per-queue pod templates and limits, timeouts and retention: agent.k8s in clearml.conf (see the README).`,
		k8sOptions(&K8s{}))
}

func k8sOptions(k *K8s) []*option {
	return []*option{
		helpOpt(&k.Help),
		listOpt(&k.Queues, "queue", "queues to pull tasks from, first = highest priority (comma-separated or several values)", "--queue"),
		strOpt(&k.Namespace, "namespace", "namespace of the pods (default clearml)", "--namespace"),
		strOpt(&k.TemplateYAML, "template_yaml", "pod template for every queue (a Pod or PodTemplate YAML)", "--template-yaml"),
		strOpt(&k.OverridesYAML, "overrides_yaml", "YAML merged over the template (containers' resources and the pod spec)", "--overrides-yaml"),
		{
			names: []string{"--max-pods"}, arity: oneArg, dest: "max_pods",
			help: "most pods (or jobs) running or pending at once; a task that does not fit stays in its queue",
			set: func(v []string) error {
				n, err := pyInt(v[0])
				k.MaxPods, k.MaxPodsSet = n, true
				return err
			},
		},
		strOpt(&k.PodNamePrefix, "pod_name_prefix", "prefix of the pod names (default clearml-id-)", "--pod-name-prefix"),
		strOpt(&k.LimitPodLabel, "limit_pod_label", "label that marks this executor's pods, counted for --max-pods "+
			"(default CLEARML=agent-<hash of the worker id>)", "--limit-pod-label"),
		flagOpt(&k.UseOwnerToken, "run each task with its owner's identity (a token in a per-task Secret)", "--use-owner-token"),
		flagOpt(&k.CreateQueue, "create the queues that do not exist", "--create-queue"),
		strOpt(&k.PendingQueue, "k8s_pending_queue_name", "queue where tasks wait for their pod (default k8s_scheduler)",
			"--k8s-pending-queue-name"),
		{
			names: []string{"--polling-interval"}, arity: oneArg, dest: "polling_interval",
			help: "seconds between queue polls when idle (default 5, minimum 0.5)",
			set: func(v []string) error {
				f, err := pyFloat(v[0])
				k.PollingSeconds, k.PollingSet = max(f, MinPollingInterval), true
				return err
			},
		},
		strOpt(&k.AgentImage, "agent_image", "image holding this agent's binary, run as the pods' init container "+
			"(default agent.k8s.agent_image or CLEARML_K8S_AGENT_IMAGE)", "--agent-image"),
		strOpt(&k.Kubeconfig, "kubeconfig", "kubeconfig file (default: in-cluster, else KUBECONFIG or ~/.kube/config)", "--kubeconfig"),
	}
}
