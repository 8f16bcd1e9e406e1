package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/goclearml/agent/internal/hocon"
)

const (
	hiddenValue = "****"     // upstream's mask for secret keys
	hiddenArg   = "********" // upstream's mask inside URLs and docker arguments
)

// dockerSecretEnv are the variables whose values upstream always hides in
// docker arguments, besides hide_docker_command_env_vars.extra_keys and
// CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV.
var dockerSecretEnv = []string{
	"CLEARML_AGENT_GIT_PASS", "TRAINS_AGENT_GIT_PASS",
	"CLEARML_API_SECRET_KEY", "TRAINS_API_SECRET_KEY",
	"AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_KEY", "CLEARML_AUTH_TOKEN",
}

// dockerImageEnv hold a whole docker command line, sanitized recursively.
var dockerImageEnv = map[string]bool{"CLEARML_DOCKER_IMAGE": true, "TRAINS_DOCKER_IMAGE": true}

// urlPassword finds the password of scheme://user:password@host URLs.
var urlPassword = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)([^\s/?#@]+)@`)
})

// compileMaskRules reads agent.sanitize_config_printout.* (Python regular
// expressions, which must also be valid RE2) and the docker hiding keys.
func compileMaskRules(raw *hocon.Config, env envReader) (maskRules, error) {
	var m maskRules
	const base = "agent.sanitize_config_printout."
	for _, f := range []struct {
		dst    *[]*regexp.Regexp
		key    string
		def    []string
		anchor bool
	}{
		{&m.hide, "hide_secrets", []string{"secret", "pass", "token", "account_key", "contents"}, false},
		{&m.hideSection, "hide_secrets_recursive", []string{"^environment$"}, false},
		{&m.dontHide, "dont_hide_secrets", []string{"^enable_git_ask_pass$"}, false},
		{&m.dockerCmd, "docker_commands", []string{"^extra_docker_arguments$"}, true}, // re.match
		{&m.urls, "urls", []string{"^extra_index_url$"}, false},
	} {
		pats := f.def
		if raw.Has(base + f.key) {
			var err error
			if pats, err = raw.StringList(base + f.key); err != nil {
				return m, err
			}
		}
		for i, p := range pats {
			expr := p
			if f.anchor {
				expr = `^(?:` + p + `)`
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return m, &hocon.ParseError{Key: fmt.Sprintf("%s%s[%d]", base, f.key, i),
					Msg: fmt.Sprintf("invalid regular expression %q: %v", p, err)}
			}
			*f.dst = append(*f.dst, re)
		}
	}

	r := &reader{raw: raw}
	_, extraEnv, extraSet := env.first("CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV")
	m.dockerHide = r.boolean("agent.hide_docker_command_env_vars.enabled", false) || extraSet
	m.dockerURLs = r.boolean("agent.hide_docker_command_env_vars.parse_embedded_urls", true)
	m.dockerKeys = map[string]bool{}
	for _, k := range append(append(r.list("agent.hide_docker_command_env_vars.extra_keys"),
		strings.Fields(extraEnv)...), dockerSecretEnv...) {
		m.dockerKeys[k] = true
	}
	return m, r.err
}

// Masked returns the merged configuration as upstream prints it (pyhocon's
// "properties" format, one "a.b.c = value" line per leaf, keys sorted),
// with secrets hidden by the agent.sanitize_config_printout rules: values
// of secret keys become "****", every key of the environment section is
// kept with "****" as its value, and passwords in URLs and secret -e values
// in docker arguments become "********". Unlike upstream, passwords in
// URLs are hidden in every value, not only under extra_index_url.
func (c *Config) Masked() string {
	tree, _ := c.masked()
	var lines []string
	properties(&lines, tree, nil)
	return strings.Join(lines, "\n")
}

// Secrets returns every secret value the configuration holds, for masking
// logs: the secret key, auth token and git password, the text values under
// keys the printout hides (except the printout rules themselves), the
// environment section's values, hidden docker -e values and passwords in
// URLs. Numbers and booleans are not secrets. The list has no duplicates
// or empty strings and is ordered longest first, so that replacing in
// order never leaves part of a longer secret.
func (c *Config) Secrets() []string {
	_, found := c.masked()
	for _, s := range []string{c.API.SecretKey, c.API.AuthToken, c.Agent.GitPass} {
		if s != "" {
			found[s] = true
		}
	}
	out := make([]string, 0, len(found))
	for s := range found {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// masked returns a masked copy of the tree and the secrets it removed.
func (c *Config) masked() (map[string]any, map[string]bool) {
	tree, _ := c.Raw.Object("")
	if tree == nil {
		tree = map[string]any{}
	}
	delete(tree, "env")
	if logging, ok := tree["logging"].(map[string]any); ok {
		delete(logging, "version")
		if loggers, ok := logging["loggers"].(map[string]any); ok {
			if u, ok := loggers["urllib3"].(map[string]any); ok {
				delete(u, "level")
			}
		}
	}
	m := &masker{rules: &c.mask, found: map[string]bool{}}
	m.object(tree)
	m.urlsEverywhere(tree)
	delete(m.found, "")
	return tree, m.found
}

// masker applies the rules to a tree, recording what it hides.
type masker struct {
	rules *maskRules
	found map[string]bool
}

func search(res []*regexp.Regexp, k string) bool {
	for _, re := range res {
		if re.MatchString(k) {
			return true
		}
	}
	return false
}

// object follows upstream's recursive_remove_secrets.
func (m *masker) object(d map[string]any) {
	for _, k := range sortedKeys(d) {
		v := d[k]
		if !search(m.rules.dontHide, k) {
			if search(m.rules.hide, k) {
				if k != "sanitize_config_printout" { // patterns, not secrets
					m.collect(v)
				}
				d[k] = hiddenValue
				continue
			}
			if search(m.rules.hideSection, k) {
				m.collect(v)
				if sec, ok := v.(map[string]any); ok {
					for kk := range sec {
						sec[kk] = hiddenValue
					}
				} else {
					d[k] = hiddenValue
				}
				continue
			}
		}
		if search(m.rules.urls, k) {
			switch x := v.(type) {
			case string:
				d[k] = m.url(x)
			case []any:
				for i, e := range x {
					if s, ok := e.(string); ok {
						x[i] = m.url(s)
					}
				}
			case map[string]any:
				for kk, e := range x {
					if s, ok := e.(string); ok {
						x[kk] = m.url(s)
					}
				}
			}
		}
		switch x := d[k].(type) {
		case map[string]any:
			m.object(x)
		case []any:
			if search(m.rules.dockerCmd, k) {
				x = m.docker(x)
				d[k] = x
			}
			for _, e := range x {
				if sub, ok := e.(map[string]any); ok {
					m.object(sub)
				}
			}
		}
	}
}

// collect records every non-empty text leaf of v as a secret.
func (m *masker) collect(v any) {
	switch x := v.(type) {
	case string:
		m.found[x] = true
		m.url(x) // a URL password may also appear on its own
	case map[string]any:
		for _, e := range x {
			m.collect(e)
		}
	case []any:
		for _, e := range x {
			m.collect(e)
		}
	}
}

// url hides the passwords of the URLs in s.
func (m *masker) url(s string) string {
	return urlPassword().ReplaceAllStringFunc(s, func(match string) string {
		sub := urlPassword().FindStringSubmatch(match)
		if sub[2] == hiddenArg { // already hidden
			return match
		}
		m.found[sub[2]] = true
		return sub[1] + hiddenArg + "@"
	})
}

// urlsEverywhere hides URL passwords in every text leaf.
func (m *masker) urlsEverywhere(v any) any {
	switch x := v.(type) {
	case string:
		return m.url(x)
	case map[string]any:
		for k, e := range x {
			x[k] = m.urlsEverywhere(e)
		}
	case []any:
		for i, e := range x {
			x[i] = m.urlsEverywhere(e)
		}
	}
	return v
}

// docker is upstream's DockerArgsSanitizer.sanitize_docker_command: the
// values of "-e KEY=value" pairs whose KEY is secret are hidden, and so are
// URL passwords when parse_embedded_urls is on. As an extension, the
// one-token forms "-e KEY=value", "-e=KEY=value" and "--env=KEY=value" are
// handled too.
func (m *masker) docker(args []any) []any {
	if !m.rules.dockerHide {
		return args
	}
	out := append([]any(nil), args...)
	for i := 0; i < len(args); i++ {
		s, ok := args[i].(string)
		if !ok {
			continue
		}
		if s == "-e" || s == "--env" {
			if i+1 < len(args) {
				if next, ok := args[i+1].(string); ok && strings.Contains(next, "=") {
					out[i+1] = m.envArg(next)
					i++
				}
			}
			continue
		}
		for _, p := range []string{"-e ", "-e=", "--env ", "--env="} {
			if rest, ok := strings.CutPrefix(s, p); ok && strings.Contains(rest, "=") {
				out[i] = p + m.envArg(strings.TrimLeft(rest, " "))
				s = ""
				break
			}
		}
		if s != "" && m.rules.dockerURLs && !strings.HasPrefix(s, "-") {
			out[i] = m.url(s)
		}
	}
	return out
}

// envArg masks one KEY=value docker environment argument.
func (m *masker) envArg(kv string) string {
	key, val, _ := strings.Cut(kv, "=")
	switch {
	case dockerImageEnv[key]:
		parts := strings.Fields(val)
		items := make([]any, len(parts))
		for i, p := range parts {
			items[i] = p
		}
		var words []string
		for _, w := range m.docker(items) {
			words = append(words, w.(string))
		}
		val = strings.Join(words, " ")
	case m.rules.dockerKeys[key]:
		m.found[val] = true
		val = hiddenArg
	case m.rules.dockerURLs:
		val = m.url(val)
	}
	return key + "=" + val
}

// properties writes v as pyhocon's HOCONConverter "properties" output.
func properties(lines *[]string, v any, stack []string) {
	key := strings.Join(stack, ".")
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if x[k] != nil {
				properties(lines, x[k], append(stack[:len(stack):len(stack)], strings.Trim(k, `"`)))
			}
		}
	case []any:
		for i, e := range x {
			if e != nil {
				properties(lines, e, append(stack[:len(stack):len(stack)], strconv.Itoa(i)))
			}
		}
	case string:
		*lines = append(*lines, key+" = "+escapeProperty(x))
	case bool:
		*lines = append(*lines, key+" = "+strconv.FormatBool(x))
	case int64:
		*lines = append(*lines, key+" = "+strconv.FormatInt(x, 10))
	case float64:
		*lines = append(*lines, key+" = "+hocon.FormatFloat(x))
	}
}

var propertyEscaper = strings.NewReplacer("=", `\=`, "!", `\!`, "#", `\#`, "\n", "\\\n")

func escapeProperty(s string) string { return propertyEscaper.Replace(s) }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
