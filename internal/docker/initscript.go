package docker

import (
	"fmt"
	"strings"
)

// InitOptions are the parts of the container set-up script (spec 3.9
// "Inner script"). The agent itself is never installed in the container:
// its own static binary is mounted, so there is no pip step.
type InitOptions struct {
	// Preprocess is agent.docker_preprocess_bash_script.
	Preprocess []string
	// Init replaces the built-in steps (agent.docker_init_bash_script).
	Init []string
	// OpenCVLibs is agent.docker_install_opencv_libs (default true): apt
	// installs libsm6 libxext6 libxrender-dev libglib2.0-0 when missing.
	OpenCVLibs bool
	// SSHFrom is where ~/.ssh is mounted read-only ("" when not mounted);
	// it is copied to SSHTo (default ~/.ssh).
	SSHFrom, SSHTo string
	// Extra is agent.extra_docker_shell_script.
	Extra []string
	// TaskScript is the task's container.setup_shell_script.
	TaskScript string
}

// pythonVersions are tried newest first for LOCAL_PYTHON.
var pythonVersions = func() []string {
	var v []string
	for minor := 20; minor >= 6; minor-- {
		v = append(v, fmt.Sprintf("3.%d", minor))
	}
	return v
}()

// InitScript renders the set-up script. It runs with sh or bash (bash
// when the image has it), sourced by the container's first process, which
// then runs the task with the environment the script leaves: exports made
// by the agent's or the task's script reach the task. As upstream joins
// the parts with " ; ", a failing step does not stop the next one.
func InitScript(o InitOptions) string {
	var b strings.Builder
	b.WriteString("# container set-up written by clearml-agent\n")
	b.WriteString("export DEBIAN_FRONTEND=noninteractive\n")
	lines(&b, o.Preprocess)
	if len(o.Init) > 0 {
		lines(&b, o.Init)
	} else {
		builtinInit(&b, o)
	}
	lines(&b, o.Extra)
	if s := strings.TrimSpace(o.TaskScript); s != "" {
		b.WriteString("# the task's setup_shell_script\n")
		lines(&b, strings.Split(s, "\n"))
	}
	return b.String()
}

// lines writes script lines, dropping blank ones and comments (upstream).
func lines(b *strings.Builder, ls []string) {
	for _, l := range ls {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
}

func builtinInit(b *strings.Builder, o InitOptions) {
	b.WriteString(`[ -f /etc/apt/apt.conf.d/docker-clean ] && rm -f /etc/apt/apt.conf.d/docker-clean
CLEARML_APT_INSTALL="${CLEARML_APT_INSTALL:-}"
command -v git >/dev/null 2>&1 || CLEARML_APT_INSTALL="$CLEARML_APT_INSTALL git"
`)
	if o.SSHFrom != "" {
		to := o.SSHTo
		if to == "" || to == "~/.ssh" {
			to = "$HOME/.ssh"
		}
		fmt.Fprintf(b, "if [ -d %s ]; then mkdir -p %s && cp -Rf %s/. %s/ && chmod 700 %s; fi\n", o.SSHFrom, to, o.SSHFrom, to, to)
	}
	fmt.Fprintf(b, `clearml_find_python() {
  for v in %s; do
    if command -v python$v >/dev/null 2>&1; then LOCAL_PYTHON=$(command -v python$v); return 0; fi
  done
  command -v python3 >/dev/null 2>&1 && LOCAL_PYTHON=$(command -v python3)
}
LOCAL_PYTHON="${LOCAL_PYTHON:-}"
[ -n "$LOCAL_PYTHON" ] || clearml_find_python
if [ -z "$LOCAL_PYTHON" ] || ! "$LOCAL_PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then
  CLEARML_APT_INSTALL="$CLEARML_APT_INSTALL python3 python3-venv python3-pip"
fi
`, strings.Join(pythonVersions, " "))
	if o.OpenCVLibs {
		b.WriteString(`if command -v dpkg-query >/dev/null 2>&1; then
  for p in libsm6 libxext6 libxrender-dev libglib2.0-0; do
    dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q "ok installed" || CLEARML_APT_INSTALL="$CLEARML_APT_INSTALL $p"
  done
fi
`)
	}
	b.WriteString(`if [ -n "$CLEARML_APT_INSTALL" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "clearml-agent: installing$CLEARML_APT_INSTALL"
    apt-get update -y -qq && apt-get install -y -qq --no-install-recommends $CLEARML_APT_INSTALL
    [ -n "$LOCAL_PYTHON" ] || clearml_find_python
  else
    echo "clearml-agent: the image lacks$CLEARML_APT_INSTALL and has no apt-get to install them"
  fi
fi
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED 2>/dev/null
[ -n "$LOCAL_PYTHON" ] && export LOCAL_PYTHON
unset -f clearml_find_python
`)
}
