#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules (through the module
# proxy) into a cache folder outside the repository, once per machine; the
# Kubernetes cluster tests (TestK8s...) use them from there.
#   tools/kubebuild/build.sh            build what is missing
#   tools/kubebuild/build.sh --print    print the folder and exit
# The folder is $CLEARML_KUBE_BIN, else ~/.cache/clearml-agent/kube-v1.37.2.
set -euo pipefail
cd "$(dirname "$0")"
version=v1.37.2
dir="${CLEARML_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/clearml-agent/kube-$version}"
if [ "${1:-}" = "--print" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
build() { # name package
  [ -x "$dir/$1" ] && return 0
  echo "kubebuild: building $1 ($2) into $dir for the Kubernetes cluster tests, once per machine; a cold build took 70 minutes on 2 heavily shared cores" >&2
  go build -trimpath -ldflags="-s -w" -o "$dir/$1.tmp" "$2"
  mv "$dir/$1.tmp" "$dir/$1"
}
build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
