package bench

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeWheel writes a pure-Python wheel of one module (name, VALUE) to
// dir: no package index is reachable where the benchmarks may run, so the
// requirement a cold task installs comes from a local find-links folder.
func writeWheel(dir, name, version string) error {
	info := fmt.Sprintf("%s-%s.dist-info", name, version)
	files := [][2]string{
		{name + "/__init__.py", fmt.Sprintf("VALUE = %q\n", name+"-"+version)},
		{info + "/METADATA", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: agentbench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	files = append(files, [2]string{info + "/RECORD", record.String()})
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", name, version)))
	if err != nil {
		return fmt.Errorf("writing a wheel: %w", err)
	}
	z := zip.NewWriter(out)
	for _, f := range files {
		w, err := z.Create(f[0])
		if err == nil {
			_, err = w.Write([]byte(f[1]))
		}
		if err != nil {
			out.Close()
			return fmt.Errorf("writing a wheel: %w", err)
		}
	}
	if err := z.Close(); err != nil {
		out.Close()
		return fmt.Errorf("writing a wheel: %w", err)
	}
	return out.Close()
}
