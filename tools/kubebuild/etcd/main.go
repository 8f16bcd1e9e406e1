// Command etcd is etcd's own server main, built from the etcd server module
// for the Kubernetes cluster tests (the distribution's etcd is too old for a
// current kube-apiserver).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
