package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/k8s"
	"github.com/goclearml/agent/internal/taskprep"
	"github.com/goclearml/agent/internal/version"
)

// runK8s is `clearml-agent k8s`: the Kubernetes executor.
func runK8s(g args.Global, argv []string, stdout, stderr io.Writer) error {
	opts, err := args.ParseK8s(argv)
	if err != nil {
		return &UsageError{Msg: "k8s: " + err.Error()}
	}
	if opts.Help {
		fmt.Fprint(stdout, args.K8sUsage())
		return errHelp
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	level := "INFO"
	if g.Debug {
		level = "DEBUG"
	}
	log, err := newLogger(g, stderr, level)
	if err != nil {
		return err
	}
	kc, err := k8sConfig(cfg, opts)
	if err != nil {
		return fmt.Errorf("k8s: %w", err)
	}
	restCfg, err := kubeRESTConfig(opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("k8s: reaching Kubernetes: %w", err)
	}
	restCfg.UserAgent = "clearml-agent-k8s/" + version.Version
	kube, err := k8s.NewKube(restCfg)
	if err != nil {
		return fmt.Errorf("k8s: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()
	client, err := newClient(ctx, cfg, log)
	if err != nil {
		return err
	}
	kc.Log = log
	ex, err := k8s.New(kc, client, kube)
	if err != nil {
		return fmt.Errorf("k8s: %w", err)
	}
	c := ex.Config()
	fmt.Fprintf(stdout, "clearml-agent %s k8s: worker %s, server %s, namespace %s, %ss, queues %s\n", version.Version,
		c.WorkerID, cfg.API.Server, c.Namespace, c.Kind, strings.Join(c.Queues, ", "))
	return ex.Run(ctx)
}

// kubeRESTConfig is --kubeconfig, else the in-cluster service account,
// else KUBECONFIG or ~/.kube/config.
func kubeRESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// k8sConfig reads the executor's settings: flags first, then upstream's
// environment variables, then agent.k8s in clearml.conf.
func k8sConfig(cfg *config.Config, o *args.K8s) (k8s.Config, error) {
	raw := cfg.Raw
	kc := k8s.Config{
		Queues: o.Queues, CreateQueue: o.CreateQueue, UseOwnerToken: o.UseOwnerToken,
		Namespace:     cmp.Or(o.Namespace, os.Getenv("K8S_DEFAULT_NAMESPACE"), raw.String("agent.k8s.namespace", "")),
		PendingQueue:  cmp.Or(o.PendingQueue, raw.String("agent.k8s.pending_queue", "")),
		Kind:          strings.ToLower(cmp.Or(os.Getenv("CLEARML_K8S_GLUE_KIND"), raw.String("agent.k8s.kind", ""))),
		PodNamePrefix: cmp.Or(o.PodNamePrefix, raw.String("agent.k8s.pod_name_prefix", "")),
		LimitLabel:    cmp.Or(o.LimitPodLabel, raw.String("agent.k8s.limit_pod_label", "")),
		AgentImage:    cmp.Or(o.AgentImage, os.Getenv("CLEARML_K8S_AGENT_IMAGE"), raw.String("agent.k8s.agent_image", "")),
		AgentBinary:   raw.String("agent.k8s.agent_binary", ""),
		SecretName:    raw.String("agent.k8s.secret_name", ""),
		APIServer:     cmp.Or(raw.String("agent.k8s.api_server", ""), cfg.API.Server),
		WebServer:     cmp.Or(raw.String("agent.k8s.web_server", ""), raw.String("api.web_server", "")),
		FilesServer:   cmp.Or(raw.String("agent.k8s.files_server", ""), raw.String("api.files_server", "")),
		AccessKey:     cfg.API.AccessKey, SecretKey: cfg.API.SecretKey,
		GitUser: cfg.Agent.GitUser, GitPass: cfg.Agent.GitPass,
		WorkerID: cmp.Or(os.Getenv("CLEARML_WORKER_ID"), cfg.Agent.WorkerID),
	}
	if kc.WorkerID == "" {
		kc.WorkerID = cfg.Agent.WorkerName + ":k8s"
	}
	if len(kc.Queues) == 0 {
		for _, q := range strings.Split(os.Getenv("K8S_GLUE_QUEUE"), ",") {
			if q = strings.TrimSpace(q); q != "" {
				kc.Queues = append(kc.Queues, q)
			}
		}
	}
	if p := raw.String("agent.k8s.agent_pull_policy", ""); p != "" {
		kc.AgentPullPolicy = corev1.PullPolicy(p)
	}
	var err error
	// Pod limits: --max-pods, K8S_GLUE_MAX_PODS, agent.k8s.max_pods.
	maxPods, err := raw.Int("agent.k8s.max_pods", 0)
	if err != nil {
		return kc, err
	}
	kc.MaxPods = int(maxPods)
	if v := os.Getenv("K8S_GLUE_MAX_PODS"); v != "" {
		if kc.MaxPods, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return kc, fmt.Errorf("K8S_GLUE_MAX_PODS %q: not a number", v)
		}
	}
	if o.MaxPodsSet {
		kc.MaxPods = o.MaxPods
	}
	seconds := func(key string, def float64) (time.Duration, error) {
		v, err := raw.Float(key, def)
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, fmt.Errorf("%s must not be negative", key)
		}
		return time.Duration(v * float64(time.Second)), nil
	}
	if kc.PendingTimeout, err = seconds("agent.k8s.pending_timeout_sec", 0); err != nil {
		return kc, err
	}
	if kc.ImagePullTimeout, err = seconds("agent.k8s.image_pull_timeout_sec", k8s.DefaultPullTimeout.Seconds()); err != nil {
		return kc, err
	}
	if kc.KeepFinished, err = seconds("agent.k8s.keep_finished_sec", k8s.DefaultKeepFinished.Seconds()); err != nil {
		return kc, err
	}
	if v := os.Getenv("K8S_GLUE_COMPLETED_POD_DELETION_DELAY_MINUTES"); v != "" {
		m, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || m < 0 {
			return kc, fmt.Errorf("K8S_GLUE_COMPLETED_POD_DELETION_DELAY_MINUTES %q: not a number of minutes", v)
		}
		kc.KeepFinished = time.Duration(m * float64(time.Minute))
	}
	kc.PollInterval = cfg.Agent.PollInterval
	if o.PollingSet {
		kc.PollInterval = time.Duration(o.PollingSeconds * float64(time.Second))
	}
	// Templates: --template-yaml (else agent.k8s.template_yaml or the
	// inline agent.k8s.template), then --overrides-yaml.
	if kc.Template, err = readTemplate(cfg, "agent.k8s", o.TemplateYAML); err != nil {
		return kc, err
	}
	if ov := cmp.Or(o.OverridesYAML, raw.String("agent.k8s.overrides_yaml", "")); ov != "" {
		data, err := os.ReadFile(config.ExpandHome(ov))
		if err != nil {
			return kc, fmt.Errorf("reading --overrides-yaml: %w", err)
		}
		if kc.Template, err = k8s.ApplyOverrides(kc.Template, data); err != nil {
			return kc, fmt.Errorf("--overrides-yaml %s: %w", ov, err)
		}
	}
	if queues, ok := raw.Get("agent.k8s.queues"); ok && queues != nil {
		m, ok := queues.(map[string]any)
		if !ok {
			return kc, fmt.Errorf("agent.k8s.queues: expected an object of queue names")
		}
		kc.PerQueue = map[string]k8s.Queue{}
		for name, v := range m {
			qm, ok := v.(map[string]any)
			if !ok {
				return kc, fmt.Errorf("agent.k8s.queues.%s: expected an object (template, template_yaml, max_pods)", name)
			}
			var q k8s.Queue
			if q.Template, err = queueTemplate(name, qm); err != nil {
				return kc, err
			}
			if mp, ok := qm["max_pods"]; ok && mp != nil {
				n, err := strconv.Atoi(fmt.Sprint(mp))
				if err != nil || n < 0 {
					return kc, fmt.Errorf("agent.k8s.queues.%s.max_pods: expected a number of pods, got %v", name, mp)
				}
				q.MaxPods = n
			}
			kc.PerQueue[name] = q
		}
	}
	cc, err := taskprep.ReadContainerChoice(cfg, nil)
	if err != nil {
		return kc, err
	}
	cc.Merge.TaskGPUs = true
	hideKeys, _ := raw.StringList("agent.hide_docker_command_env_vars.extra_keys")
	kc.Selection = docker.Selection{Defaults: cc.Defaults, Extra: cc.Extra, Merge: cc.Merge,
		Masker: docker.Masker{Keys: hideKeys, Secrets: cfg.Secrets()}}
	kc.Init, kc.ForcePull = cc.Init, cc.ForcePull
	return kc, nil
}

// readTemplate reads a pod template: the file flag (when given), else
// <base>.template_yaml (a file), else <base>.template (inline, as HOCON).
func readTemplate(cfg *config.Config, base, flag string) (*corev1.Pod, error) {
	path := cmp.Or(flag, cfg.Raw.String(base+".template_yaml", ""))
	if path != "" {
		data, err := os.ReadFile(config.ExpandHome(path))
		if err != nil {
			return nil, fmt.Errorf("reading the pod template: %w", err)
		}
		tpl, err := k8s.LoadTemplate(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		return tpl, nil
	}
	inline, ok := cfg.Raw.Get(base + ".template")
	if !ok || inline == nil {
		return nil, nil
	}
	data, err := json.Marshal(inline)
	if err != nil {
		return nil, fmt.Errorf("%s.template: %w", base, err)
	}
	tpl, err := k8s.LoadTemplate(data)
	if err != nil {
		return nil, fmt.Errorf("%s.template: %w", base, err)
	}
	return tpl, nil
}

// queueTemplate reads agent.k8s.queues.<name>.template_yaml (a file) or
// .template (inline).
func queueTemplate(name string, qm map[string]any) (*corev1.Pod, error) {
	if path, _ := qm["template_yaml"].(string); path != "" {
		data, err := os.ReadFile(config.ExpandHome(path))
		if err != nil {
			return nil, fmt.Errorf("agent.k8s.queues.%s.template_yaml: %w", name, err)
		}
		tpl, err := k8s.LoadTemplate(data)
		if err != nil {
			return nil, fmt.Errorf("agent.k8s.queues.%s.template_yaml %s: %w", name, filepath.Base(path), err)
		}
		return tpl, nil
	}
	inline, ok := qm["template"]
	if !ok || inline == nil {
		return nil, nil
	}
	data, err := json.Marshal(inline)
	if err != nil {
		return nil, fmt.Errorf("agent.k8s.queues.%s.template: %w", name, err)
	}
	tpl, err := k8s.LoadTemplate(data)
	if err != nil {
		return nil, fmt.Errorf("agent.k8s.queues.%s.template: %w", name, err)
	}
	return tpl, nil
}

// runK8sInstall is the pods' init container: `k8s-install DIR`.
func runK8sInstall(argv []string) error {
	if len(argv) != 1 {
		return &UsageError{Msg: "k8s-install needs one folder"}
	}
	return k8s.Install(argv[0])
}
