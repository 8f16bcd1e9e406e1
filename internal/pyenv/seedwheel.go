package pyenv

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// wheelsScript prints the packages ensurepip installs (one line, comma
// separated) and then the wheels it would take them from: the
// interpreter's WHEEL_PKG_DIR (Debian's /usr/share/python-wheels) and its
// bundled ones.
const wheelsScript = `import glob, os, ensurepip
print(",".join(getattr(ensurepip, "_PACKAGE_NAMES", ())))
dirs = [getattr(ensurepip, "_WHEEL_PKG_DIR", None), os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")]
for d in dirs:
    if d:
        for w in sorted(glob.glob(os.path.join(d, "*.whl"))):
            print(w)
`

// seedWheels returns the wheels ensurepip would install into a venv of
// this interpreter: pip at exactly the version ensurepip reports (the
// cache key's), plus setuptools where ensurepip installs it. Any doubt
// (an unknown ensurepip, a missing or ambiguous wheel) is an error: the
// caller then runs ensurepip itself.
func (p *prep) seedWheels(ctx context.Context, in *interpreter) ([]string, error) {
	out, err := p.command(ctx, in.Path, "-E", "-s", "-c", wheelsScript).Output()
	if err != nil {
		return nil, fmt.Errorf("listing ensurepip's wheels: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	names := strings.Split(strings.TrimSpace(lines[0]), ",")
	var picked []string
	for _, name := range names {
		var found []string
		for _, w := range lines[1:] {
			base := filepath.Base(strings.TrimSpace(w))
			want := name + "-"
			if name == "pip" {
				want = "pip-" + in.Pip + "-"
			}
			if strings.HasPrefix(base, want) && strings.HasSuffix(base, "-py3-none-any.whl") {
				found = append(found, strings.TrimSpace(w))
			}
		}
		if len(found) == 0 || (len(found) > 1 && found[0] != found[len(found)-1]) {
			return nil, fmt.Errorf("ensurepip's %s wheel: %d candidates", name, len(found))
		}
		picked = append(picked, found[0])
	}
	if len(picked) == 0 || !strings.Contains(lines[0], "pip") {
		return nil, fmt.Errorf("ensurepip's packages %q: no pip", lines[0])
	}
	return picked, nil
}

// pipScriptRE names pip's versioned scripts (pip3, pip3.11), which pip
// writes for the interpreter at hand rather than as the wheel lists them.
var pipScriptRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^pip(\d+(\.\d+)?)?$`) })

// installWheel unpacks a pure-Python wheel into the venv at dir as pip
// would (files into site-packages, INSTALLER, console scripts for the
// venv's python); pip's own scripts are pip, pip3 and pip3.X for this
// interpreter, as ensurepip --default-pip makes them.
func installWheel(wheel, dir, version string) error {
	site, err := sitePackages(dir)
	if err != nil {
		return err
	}
	z, err := zip.OpenReader(wheel)
	if err != nil {
		return fmt.Errorf("opening wheel %s: %w", wheel, err)
	}
	defer z.Close()
	var distInfo string
	var scripts [][2]string // name, "module:function"
	for _, f := range z.File {
		name := path.Clean(f.Name)
		if !filepath.IsLocal(name) || strings.Contains(strings.SplitN(name, "/", 2)[0], ".data") {
			return fmt.Errorf("wheel %s: %s is not a plain site-packages file", wheel, f.Name)
		}
		if top, rest, _ := strings.Cut(name, "/"); strings.HasSuffix(top, ".dist-info") {
			distInfo = top
			if rest == "entry_points.txt" {
				if scripts, err = consoleScripts(f); err != nil {
					return fmt.Errorf("wheel %s: %w", wheel, err)
				}
			}
		}
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if err := extract(f, filepath.Join(site, filepath.FromSlash(name))); err != nil {
			return fmt.Errorf("unpacking wheel %s: %w", wheel, err)
		}
	}
	if distInfo == "" {
		return fmt.Errorf("wheel %s has no .dist-info", wheel)
	}
	if err := os.WriteFile(filepath.Join(site, distInfo, "INSTALLER"), []byte("pip\n"), 0o644); err != nil {
		return err
	}
	for _, s := range scripts {
		if pipScriptRE().MatchString(s[0]) {
			continue
		}
		if err := writeScript(dir, s[0], s[1]); err != nil {
			return err
		}
	}
	if strings.HasPrefix(filepath.Base(wheel), "pip-") {
		major, _, _ := strings.Cut(version, ".")
		for _, name := range []string{"pip", "pip" + major, "pip" + majorMinor(version)} {
			if err := writeScript(dir, name, "pip._internal.cli.main:main"); err != nil {
				return err
			}
		}
	}
	return nil
}

// consoleScripts reads the [console_scripts] section of entry_points.txt.
func consoleScripts(f *zip.File) ([][2]string, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out [][2]string
	section := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		name, target, ok := strings.Cut(line, "=")
		if section != "[console_scripts]" || !ok {
			continue
		}
		name, target = strings.TrimSpace(name), strings.TrimSpace(target)
		if strings.ContainsAny(name, `/\ `) || !strings.Contains(target, ":") || strings.ContainsAny(target, "[ ") {
			return nil, fmt.Errorf("console script %q = %q is not one this installer writes", name, target)
		}
		out = append(out, [2]string{name, target})
	}
	return out, sc.Err()
}

// writeScript writes bin/<name> calling module:function, as pip's
// launcher does.
func writeScript(dir, name, target string) error {
	module, fn, _ := strings.Cut(target, ":")
	text := fmt.Sprintf("#!%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom %s import %s\n"+
		"if __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(%s())\n",
		venvPython(dir), module, strings.Split(fn, ".")[0], fn)
	return os.WriteFile(filepath.Join(venvBin(dir), name), []byte(text), 0o755)
}

func extract(f *zip.File, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := f.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
