//go:build tools

// Package tools pins crictl (the real node's teardown talks CRI to containerd); see ../../gen-gomod.sh.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
