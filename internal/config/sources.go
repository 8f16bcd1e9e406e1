package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goclearml/agent/internal/hocon"
)

// overridePrefix starts the names of the dynamic override variables.
const overridePrefix = "CLEARML_AGENT__"

// openError reports a --config-file that is not a readable file. Its text
// is upstream's; it unwraps to the underlying cause (fs.ErrNotExist for a
// missing file).
type openError struct {
	path string
	err  error
}

func (e *openError) Error() string { return "could not open configuration file: " + e.path }
func (e *openError) Unwrap() error { return e.err }

// readConfigPath merges the CLEARML_CONFIG_PATH directory (layer 2).
func (c *Config) readConfigPath(env envReader, lookup func(string) (string, bool), home string) error {
	_, dir, ok := env.first("CLEARML_CONFIG_PATH", "TRAINS_CONFIG_PATH")
	if !ok {
		return nil
	}
	envName := "default"
	if _, v, ok := env.first("TRAINS_ENV"); ok {
		envName = v
	}
	switch envName {
	case "default", "demo", "local":
	default:
		return fmt.Errorf("invalid environment %q (TRAINS_ENV must be default, demo or local)", envName)
	}
	dir = expandUser(dir, home)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil
	}
	subdirs := []string{"default"}
	if envName != "default" {
		subdirs = append(subdirs, envName)
	}
	for _, sub := range subdirs {
		if err := c.readTree(filepath.Join(dir, sub), lookup); err != nil {
			return err
		}
	}
	return nil
}

// readTree merges every *.conf file under root, each placed under the key
// made of its relative directory and file stem. A missing root is empty.
func (c *Config) readTree(root string, lookup func(string) (string, bool)) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() && filepath.Ext(p) == ".conf" {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", root, err)
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		key := strings.ReplaceAll(strings.TrimSuffix(rel, ".conf"), string(filepath.Separator), ".")
		parsed, err := c.parseFile(p, lookup)
		if err != nil {
			return err
		}
		if parsed == nil {
			continue
		}
		layer := &hocon.Config{}
		layer.Set(quotePath(key), parsed)
		c.Raw.Merge(layer)
	}
	return nil
}

// readLocalFiles merges the local files (layer 3).
func (c *Config) readLocalFiles(opts LoadOptions, env envReader) error {
	var files []string
	explicit := ""
	switch {
	case opts.ConfigFile != "":
		p := expandUser(expandVars(opts.ConfigFile, opts.LookupEnv), opts.Home)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		st, err := os.Stat(p)
		if err == nil && !st.Mode().IsRegular() {
			err = fs.ErrInvalid
		}
		if err != nil {
			return &openError{path: p, err: err}
		}
		explicit = p
	default:
		if _, v, ok := env.first("CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE"); ok {
			explicit = expandUser(v, opts.Home)
		}
	}
	switch {
	case explicit != "":
		files = []string{explicit}
		c.location = explicit
	case opts.Home != "":
		files = []string{filepath.Join(opts.Home, "trains.conf"), filepath.Join(opts.Home, "clearml.conf")}
	}
	if opts.BaseFile != "" {
		parsed, err := c.parseFile(opts.BaseFile, opts.LookupEnv)
		if err != nil {
			return err
		}
		if parsed != nil {
			c.Raw.Merge(parsed)
		}
	}
	for _, f := range files {
		parsed, err := c.parseFile(f, opts.LookupEnv)
		if err != nil {
			return err
		}
		if parsed == nil {
			continue
		}
		c.Raw.Merge(parsed)
		if explicit == "" {
			// Upstream names ~/clearml.conf when it exists, else ~/trains.conf.
			c.location = f
		}
	}
	return nil
}

// parseFile reads one HOCON file and records it in c.Files. A path that
// is missing or not a regular file yields (nil, nil), as upstream treats
// it as an empty file.
func (c *Config) parseFile(path string, lookup func(string) (string, bool)) (*hocon.Config, error) {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	parsed, err := hocon.ParseWithEnv(path, data, lookup)
	if err != nil {
		return nil, err
	}
	c.Files = append(c.Files, path)
	return parsed, nil
}

// applyDynamicOverrides merges the CLEARML_AGENT__ variables (layer 4).
func (c *Config) applyDynamicOverrides(opts LoadOptions) error {
	vals := map[string]string{}
	var names []string
	for _, kv := range opts.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, overridePrefix) {
			if _, dup := vals[k]; !dup {
				names = append(names, k)
			}
			vals[k] = v
		}
	}
	sort.Strings(names)
	for _, name := range names {
		path := strings.ToLower(strings.ReplaceAll(name[len(overridePrefix):], "__", "."))
		if path == "" {
			return fmt.Errorf("environment variable %s: no configuration key after the prefix", name)
		}
		v := vals[name]
		if strings.TrimSpace(v) == "" {
			layer := &hocon.Config{}
			layer.Set(path, "")
			c.Raw.Merge(layer)
			continue
		}
		layer, err := hocon.ParseWithEnv("$"+name, []byte(path+": "+v), opts.LookupEnv)
		if err != nil {
			return err
		}
		c.Raw.Merge(layer)
	}
	return nil
}

// quotePath quotes the segments of a dotted path that HOCON would not read
// back as one key each (a file stem with spaces, say).
func quotePath(p string) string {
	segs := strings.Split(p, ".")
	for i, s := range segs {
		if s == "" || strings.ContainsAny(s, " \t\"\\$#{}[],:=+?!@*&^`") {
			segs[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
		}
	}
	return strings.Join(segs, ".")
}

// expandUser replaces a leading "~" (alone or before a separator) with home.
func expandUser(p, home string) string {
	if home == "" || !strings.HasPrefix(p, "~") {
		return p
	}
	if p == "~" {
		return home
	}
	if p[1] == '/' || p[1] == filepath.Separator {
		return filepath.Join(home, p[2:])
	}
	return p
}

// expandVars replaces $NAME and ${NAME} with their values, keeping
// references to unset variables verbatim, as Python's os.path.expandvars.
func expandVars(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		var name string
		end := i + 1
		if s[i+1] == '{' {
			j := strings.IndexByte(s[i+2:], '}')
			if j < 0 {
				b.WriteByte(s[i])
				continue
			}
			name, end = s[i+2:i+2+j], i+3+j
		} else {
			for end < len(s) && isWordByte(s[end]) {
				end++
			}
			name = s[i+1 : end]
		}
		if v, ok := lookup(name); ok && name != "" {
			b.WriteString(v)
		} else {
			b.WriteString(s[i:end])
		}
		i = end - 1
	}
	return b.String()
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
