//go:build tools

// Package tools pins the Cluster API core manager and clusterctl; see ../../gen-gomod.sh.
package tools

import (
	_ "sigs.k8s.io/cluster-api"
	_ "sigs.k8s.io/cluster-api/cmd/clusterctl"
)
