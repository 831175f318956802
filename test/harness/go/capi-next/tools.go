//go:build tools

// Package tools pins the next Cluster API minor's core manager and clusterctl; see ../../gen-gomod.sh.
package tools

import (
	_ "sigs.k8s.io/cluster-api/core"
	_ "sigs.k8s.io/cluster-api/cmd/clusterctl"
)
