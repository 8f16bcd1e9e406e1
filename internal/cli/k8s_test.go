package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/goclearml/agent/internal/args"
)

// TestK8sDeployConfig: the clearml.conf of deploy/k8s/configmap.yaml is
// read as documented (templates, per-queue limits, timeouts) and passes
// the executor's checks.
func TestK8sDeployConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "k8s", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "clearml.conf")
	body := cm.Data["clearml.conf"] + "\napi.credentials { access_key: AK, secret_key: SK }\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLEARML_CONFIG_FILE", "")
	t.Setenv("K8S_GLUE_MAX_PODS", "")
	os.Unsetenv("K8S_GLUE_MAX_PODS")
	cfg, err := loadConfig(args.Global{ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	o, err := args.ParseK8s([]string{"--queue", "gpu,default", "--namespace", "clearml"})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := k8sConfig(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	kc.WorkerID = "w"
	if err := kc.Check(); err != nil {
		t.Fatal(err)
	}
	gpu := kc.PerQueue["gpu"]
	if kc.MaxPods != 20 || gpu.MaxPods != 4 || gpu.Template == nil || gpu.Template.Spec.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Fatalf("max %d, gpu %+v", kc.MaxPods, gpu)
	}
	lim := gpu.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]
	mem := kc.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	if lim.Value() != 1 || mem.String() != "8Gi" || kc.ImagePullTimeout.Seconds() != 120 || kc.KeepFinished.Seconds() != 600 ||
		strings.Join(kc.Queues, ",") != "gpu,default" || kc.APIServer != "http://clearml-apiserver:8008" {
		t.Fatalf("config %+v", kc)
	}
	// A typo in a template is a clear error.
	bad := strings.Replace(body, "nodeSelector", "nodeSelektor", 1)
	os.WriteFile(conf, []byte(bad), 0o600)
	cfg, err = loadConfig(args.Global{ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k8sConfig(cfg, o); err == nil || !strings.Contains(err.Error(), "nodeSelektor") {
		t.Fatalf("typo in a template: %v", err)
	}
}
