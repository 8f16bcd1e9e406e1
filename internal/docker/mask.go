package docker

import (
	"regexp"
	"sync"

	"github.com/goclearml/agent/internal/redact"
	"sort"
	"strings"
)

// Hidden replaces secret values in the printed command line.
const Hidden = "********"

var urlPassword = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)([^\s/?#@]+)@`)
})

// Masker hides secrets in docker command lines.
type Masker struct {
	// Keys are variable names whose -e values are always hidden
	// (agent.hide_docker_command_env_vars.extra_keys), besides the names
	// SecretName recognises.
	Keys []string
	// Secrets are literal values hidden wherever they appear.
	Secrets []string
	// Disabled is agent.hide_docker_command_env_vars.enabled = false: only
	// the literal secrets are hidden then.
	Disabled bool
}

// Mask returns argv with the values of secret -e options, passwords in
// URLs and every literal secret replaced by Hidden. argv is in the
// canonical form RunSpec.Argv writes (--env=NAME=value).
func (m Masker) Mask(argv []string) []string {
	keys := map[string]bool{}
	for _, k := range m.Keys {
		keys[k] = true
	}
	secrets := append([]string(nil), m.Secrets...)
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	out := make([]string, len(argv))
	for i, a := range argv {
		if !m.Disabled {
			if kv, ok := strings.CutPrefix(a, "--env="); ok {
				if name, val, hasVal := strings.Cut(kv, "="); hasVal && val != "" && (keys[name] || redact.SecretName(name)) {
					a = "--env=" + name + "=" + Hidden
				}
			}
			a = urlPassword().ReplaceAllString(a, "${1}"+Hidden+"@")
		}
		for _, s := range secrets {
			if len(s) >= 4 {
				a = strings.ReplaceAll(a, s, Hidden)
			}
		}
		out[i] = a
	}
	return out
}
