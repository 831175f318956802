//go:build tools

// Package tools pins kine's main package (the k0s image's storage shim); see ../../gen-gomod.sh.
package tools

import _ "github.com/k3s-io/kine"
