package pyenv

import (
	"fmt"
	"sort"
	"strings"
)

// uvLockRequirements turns a uv.lock into pinned pip requirement lines, so
// that a repository locked with uv gets exactly its locked versions even
// where uv itself is not installed: registry packages become name==version,
// git sources name @ git+URL@commit, URL sources name @ URL; the project
// itself (virtual, editable or directory sources) is left out. A package
// that is only needed under environment markers gets those markers, so pip
// skips it where it does not apply (pywin32 on Linux, say).
func uvLockRequirements(lock string) ([]string, error) {
	type pkg struct{ name, version, source string }
	var pkgs []pkg
	markers := map[string][]string{} // package -> markers of the edges that need it
	unconditional := map[string]bool{}
	var cur *pkg
	inDeps := false
	for _, raw := range strings.Split(lock, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "[[package]]":
			pkgs = append(pkgs, pkg{})
			cur, inDeps = &pkgs[len(pkgs)-1], false
			continue
		case strings.HasPrefix(line, "["):
			if strings.HasPrefix(line, "[package.") {
				inDeps = strings.Contains(line, "dependencies")
				continue
			}
			cur, inDeps = nil, false
			continue
		case cur == nil:
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		switch {
		case ok && key == "name" && !inDeps:
			cur.name = unquote(value)
		case ok && key == "version" && !inDeps:
			cur.version = unquote(value)
		case ok && key == "source":
			cur.source = strings.TrimSpace(value)
		case ok && (key == "dependencies" || key == "dev-dependencies"):
			inDeps = true
		}
		// Dependency edges: { name = "x", marker = "..." }
		if inDeps && strings.Contains(line, "name =") && strings.HasPrefix(line, "{") {
			name := inlineField(line, "name")
			if m := inlineField(line, "marker"); m != "" {
				markers[name] = append(markers[name], m)
			} else {
				unconditional[name] = true
			}
		}
		if inDeps && line == "]" {
			inDeps = false
		}
	}
	var out []string
	for _, p := range pkgs {
		if p.name == "" {
			continue
		}
		var req string
		switch {
		case strings.Contains(p.source, "registry"):
			if p.version == "" {
				return nil, fmt.Errorf("uv.lock: package %s has no version", p.name)
			}
			req = p.name + "==" + p.version
		case strings.Contains(p.source, "git ="):
			u := inlineField(p.source, "git")
			base, commit, _ := strings.Cut(u, "#")
			base, _, _ = strings.Cut(base, "?")
			req = p.name + " @ git+" + base
			if commit != "" {
				req += "@" + commit
			}
		case strings.Contains(p.source, "url ="):
			req = p.name + " @ " + inlineField(p.source, "url")
		default:
			continue // the project itself: virtual, editable, directory or path
		}
		if ms := markers[p.name]; len(ms) > 0 && !unconditional[p.name] {
			sort.Strings(ms)
			req += " ; " + "(" + strings.Join(ms, ") or (") + ")"
		}
		if got := normalizeRequirements(req); len(got) != 1 || got[0] != strings.Join(strings.FieldsFunc(req, pySpace), " ") {
			return nil, fmt.Errorf("uv.lock: package %q cannot be written as a pip requirement (%q)", p.name, req)
		}
		out = append(out, req)
	}
	return out, nil
}

func unquote(v string) string {
	return strings.Trim(strings.TrimSpace(v), `"'`)
}

// inlineField reads key = "value" from an inline TOML table.
func inlineField(table, key string) string {
	i := strings.Index(table, key+" = \"")
	if i < 0 {
		return ""
	}
	rest := table[i+len(key)+4:]
	end := strings.Index(rest, "\"")
	if end < 0 {
		return ""
	}
	return strings.ReplaceAll(rest[:end], `\"`, `"`)
}
