package testbin

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BuildWheel writes a pure-Python wheel (a zip with a .dist-info folder) to
// dir and returns its path: PyPI cannot be reached here, so tests make the
// packages they install. files maps paths inside the wheel to contents;
// requires lists Requires-Dist entries.
func BuildWheel(dir, name, version string, files map[string]string, requires ...string) (string, error) {
	dist := strings.ReplaceAll(name, "-", "_")
	info := fmt.Sprintf("%s-%s.dist-info", dist, version)
	all := map[string]string{}
	for k, v := range files {
		all[k] = v
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)
	for _, r := range requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	all[info+"/METADATA"] = meta
	all[info+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: clearml-agent-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	sort.Strings(names)
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", dist, version))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	z := zip.NewWriter(f)
	var record strings.Builder
	for _, n := range names {
		w, err := z.Create(n)
		if err != nil {
			return "", err
		}
		if _, err := w.Write([]byte(all[n])); err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(all[n]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(all[n]))
	}
	record.WriteString(info + "/RECORD,,\n")
	w, err := z.Create(info + "/RECORD")
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		return "", err
	}
	return path, z.Close()
}
