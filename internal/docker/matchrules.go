package docker

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/goclearml/agent/internal/shellwords"
)

// MatchRule is one agent.default_docker.match_rules entry: the image and
// arguments to use for tasks without an image whose fields match.
type MatchRule struct {
	Image     string
	Arguments []string
	// Regular expressions (searched anywhere in the value); nil: any.
	Project, Repository, Branch, Binary, Container *regexp.Regexp
	// Requirements maps a package name to a version specifier
	// ("~=2.6", ">=1.13,<2"): the task must require the package at a
	// pinned version that satisfies it ("" or "*": any version, pinned or
	// not).
	Requirements map[string]string
}

// ParseMatchRules reads the configuration list.
func ParseMatchRules(v any) ([]MatchRule, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("agent.default_docker.match_rules must be a list of rules")
	}
	rules := make([]MatchRule, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("agent.default_docker.match_rules[%d] must be an object", i)
		}
		r, err := parseRule(m)
		if err != nil {
			return nil, fmt.Errorf("agent.default_docker.match_rules[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(m map[string]any) (MatchRule, error) {
	var r MatchRule
	r.Image, _ = m["image"].(string)
	if strings.TrimSpace(r.Image) == "" {
		return r, fmt.Errorf("rule has no image")
	}
	args, err := StringOrList(m["arguments"])
	if err != nil {
		return r, fmt.Errorf("arguments: %w", err)
	}
	r.Arguments = args
	match, _ := m["match"].(map[string]any)
	if match == nil {
		return r, fmt.Errorf("rule has no match section")
	}
	script, _ := match["script"].(map[string]any)
	for _, f := range []struct {
		dst *(*regexp.Regexp)
		src map[string]any
		key string
	}{
		{&r.Project, match, "project"}, {&r.Container, match, "container"},
		{&r.Repository, script, "repository"}, {&r.Branch, script, "branch"}, {&r.Binary, script, "binary"},
	} {
		s, ok := f.src[f.key].(string)
		if !ok || s == "" {
			continue
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return r, fmt.Errorf("match %s %q: %w", f.key, s, err)
		}
		*f.dst = re
	}
	if reqs, ok := script["requirements"].(map[string]any); ok {
		r.Requirements = map[string]string{}
		for _, section := range []string{"pip", "conda"} {
			pkgs, _ := reqs[section].(map[string]any)
			for name, spec := range pkgs {
				s := fmt.Sprint(spec)
				if _, err := parseSpecifiers(s); err != nil {
					return r, fmt.Errorf("requirement %s %q: %w", name, s, err)
				}
				r.Requirements[normalizeName(name)] = s
			}
		}
	}
	return r, nil
}

// StringOrList reads docker arguments given as a list or as one string.
func StringOrList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return shellwords.Split(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				s = fmt.Sprint(e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected a string or a list of strings")
}

// Matches reports whether the task satisfies every condition of the rule.
func (r MatchRule) Matches(t TaskInfo) (bool, error) {
	for _, c := range []struct {
		re *regexp.Regexp
		v  string
	}{{r.Project, t.Project}, {r.Repository, t.Repository}, {r.Branch, t.Branch}, {r.Binary, t.Binary}, {r.Container, t.Container.Image}} {
		if c.re != nil && !c.re.MatchString(c.v) {
			return false, nil
		}
	}
	if len(r.Requirements) == 0 {
		return true, nil
	}
	pins := pinnedVersions(t.Requirements)
	for name, spec := range r.Requirements {
		v, required := pins[name]
		if !required {
			return false, nil
		}
		specs, _ := parseSpecifiers(spec)
		if len(specs) == 0 {
			continue
		}
		if v == "" || !satisfies(v, specs) {
			return false, nil
		}
	}
	return true, nil
}

// Describe renders the rule for the task log.
func (r MatchRule) Describe() string {
	var parts []string
	add := func(k string, re *regexp.Regexp) {
		if re != nil {
			parts = append(parts, k+"="+re.String())
		}
	}
	add("project", r.Project)
	add("repository", r.Repository)
	add("branch", r.Branch)
	add("binary", r.Binary)
	add("container", r.Container)
	names := make([]string, 0, len(r.Requirements))
	for n := range r.Requirements {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, n+r.Requirements[n])
	}
	return fmt.Sprintf("image %s if %s", r.Image, strings.Join(parts, ", "))
}

var reqNameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$`)
})

// pinnedVersions maps each required package to its "==" version ("" when
// the requirement is not pinned).
func pinnedVersions(reqs string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(reqs, "\n") {
		line, _, _ = strings.Cut(line, "#")
		line, _, _ = strings.Cut(line, ";")
		m := reqNameRE().FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		name, rest := normalizeName(m[1]), strings.TrimSpace(m[2])
		out[name] = ""
		if v, ok := strings.CutPrefix(rest, "=="); ok && !strings.ContainsAny(v, ",*") {
			out[name] = strings.TrimSpace(v)
		}
	}
	return out
}

var nameSepRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[-_.]+`) })

// normalizeName is PEP 503 name normalisation.
func normalizeName(n string) string {
	return strings.ToLower(nameSepRE().ReplaceAllString(strings.TrimSpace(n), "-"))
}

type specifier struct{ op, version string }

var specRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(~=|==|!=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!-]*)$`) })

// parseSpecifiers reads "~=2.6" or ">=1.13, <2"; "" and "*" mean any.
func parseSpecifiers(s string) ([]specifier, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil, nil
	}
	var out []specifier
	for _, part := range strings.Split(s, ",") {
		m := specRE().FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, fmt.Errorf("not a version specifier (use ==, !=, >=, <=, >, < or ~= and a version)")
		}
		out = append(out, specifier{m[1], m[2]})
	}
	return out, nil
}

func satisfies(v string, specs []specifier) bool {
	for _, s := range specs {
		if !s.match(v) {
			return false
		}
	}
	return true
}

func (s specifier) match(v string) bool {
	if strings.HasSuffix(s.version, ".*") && (s.op == "==" || s.op == "!=") {
		prefix := versionParts(strings.TrimSuffix(s.version, ".*"))
		have := versionParts(v)
		eq := len(have) >= len(prefix) && compareParts(have[:len(prefix)], prefix) == 0
		return eq == (s.op == "==")
	}
	c := compareParts(versionParts(v), versionParts(s.version))
	switch s.op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case ">=":
		return c >= 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case "<":
		return c < 0
	case "~=":
		// ~=X.Y.Z means >=X.Y.Z and ==X.Y.*
		want := versionParts(s.version)
		if c < 0 || len(want) < 2 {
			return false
		}
		prefix := want[:len(want)-1]
		have := versionParts(v)
		return len(have) >= len(prefix) && compareParts(have[:len(prefix)], prefix) == 0
	}
	return false
}

// versionParts reads the release numbers of a version ("1.13.1+cu117"
// gives 1, 13, 1); pre-release and local parts are ignored.
func versionParts(v string) []int {
	v, _, _ = strings.Cut(v, "+")
	var out []int
	for _, p := range strings.Split(v, ".") {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		if end == 0 {
			break
		}
		n, _ := strconv.Atoi(p[:end])
		out = append(out, n)
		if end < len(p) {
			break
		}
	}
	return out
}

func compareParts(a, b []int) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
