#!/usr/bin/env bash
# Runs the whole test suite: go vet, then go test on every package. The
# arguments are passed on to go test (for example -run TestName, -v, or
# -race for the race detector).
#
# Run as root on Debian/Ubuntu, it first installs the Debian packages the
# tests use when they are missing, and says which and why before it does:
# PostgreSQL's server binaries, Chromium, git, poetry and, where docker is
# installed, busybox-static, debootstrap and haproxy. To install nothing, give
# --no-install (it is not passed on to go test) or set
# CLEARML_AGENT_TEST_NO_INSTALL=1.
# Tests whose prerequisite is still missing skip with a message naming it.
set -euo pipefail
cd "$(dirname "$0")"

install=yes
case "${CLEARML_AGENT_TEST_NO_INSTALL:-}" in
  "" | 0 | false | no) ;;
  *) install=no ;;
esac
args=()
for a in "$@"; do
  if [ "$a" = --no-install ]; then
    install=no
  else
    args+=("$a")
  fi
done

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is not installed (https://go.dev/dl/); the module needs Go 1.26 or newer" >&2
  exit 1
fi

have_pg() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
# Debian packages the tests use when present, and what for.
missing=()
why=()
want() { missing+=("$1"); why+=("  $1: $2"); }
have_pg || want postgresql "the PostgreSQL store tests run a PostgreSQL server of their own"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  want chromium "the web UI's browser tests drive Chromium"
command -v git >/dev/null 2>&1 || want git "the checkout tests clone local git repositories"
command -v poetry >/dev/null 2>&1 || want python3-poetry "the poetry.lock environment tests run poetry"
if command -v docker >/dev/null 2>&1; then
  [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] ||
    want busybox-static "the docker-mode tests import a static busybox as a local image"
  command -v debootstrap >/dev/null 2>&1 ||
    want debootstrap "the docker-mode tests build a local Debian image with Python"
  [ -x /usr/sbin/haproxy ] ||
    want haproxy "the cluster tests (TestCluster...) run HAProxy in front of three server replicas"
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$install" = yes ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing Debian packages the tests use (apt-get, as root; --no-install skips this):"
    printf '%s\n' "${why[@]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) ||
      echo "test.sh: could not install ${missing[*]}; the tests that need them will skip" >&2
  else
    reason="not root, or no apt-get"
    [ "$install" = yes ] || reason="--no-install or CLEARML_AGENT_TEST_NO_INSTALL"
    echo "test.sh: not installing ${missing[*]} ($reason); the tests that need them will skip:"
    printf '%s\n' "${why[@]}"
  fi
fi

# The Kubernetes cluster tests (TestK8s...) run on a kube-apiserver and an
# etcd built from their Go modules, once per machine, into a cache outside
# the repository (build.sh says so before a cold build of up to 70 minutes on 2 shared cores).
if command -v docker >/dev/null 2>&1; then
  tools/kubebuild/build.sh ||
    echo "test.sh: could not build kube-apiserver and etcd; the Kubernetes cluster tests will skip" >&2
fi

# The test binaries build without cgo, as the agent does (the agent binary
# the tests run is always built static: internal/testbin), except under the
# race detector (./test.sh -race), which needs cgo and a C compiler.
cgo=0
for a in ${args[@]+"${args[@]}"}; do
  case "$a" in -race | -race=true | --race | --race=true) cgo=1 ;; esac
done
export CGO_ENABLED=$cgo
go vet ./...
go test -timeout 25m -count=1 ${args[@]+"${args[@]}"} ./...
