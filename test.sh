#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian/Ubuntu machine it first
# installs what the tests need (PostgreSQL server binaries), when it may.
# Tests whose prerequisite is still missing skip with a message naming it.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is not installed (https://go.dev/dl/); the module needs Go 1.26 or newer" >&2
  exit 1
fi

have_pg() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
# Debian packages the tests use when present: PostgreSQL (the PostgreSQL
# store), git (checkouts), poetry (poetry.lock environments), Chromium (the
# web UI's browser tests), a static busybox and debootstrap (the local
# images of the docker-mode tests; no registry is needed).
missing=()
have_pg || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v poetry >/dev/null 2>&1 || missing+=(python3-poetry)
if command -v docker >/dev/null 2>&1; then
  [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
fi
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: installing ${missing[*]} for the tests that need them"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) ||
    echo "test.sh: could not install ${missing[*]}; the tests that need them will skip" >&2
fi

# The Kubernetes cluster tests (TestK8s...) run on a kube-apiserver and an
# etcd built from their Go modules, once per machine, into a cache outside
# the repository (build.sh says so before a cold build of up to 70 minutes on 2 shared cores).
if command -v docker >/dev/null 2>&1; then
  tools/kubebuild/build.sh ||
    echo "test.sh: could not build kube-apiserver and etcd; the Kubernetes cluster tests will skip" >&2
fi

export CGO_ENABLED=0
go vet ./...
go test -timeout 25m -count=1 "$@" ./...
