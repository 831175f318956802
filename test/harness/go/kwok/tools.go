//go:build tools

// Package tools pins the kwok controller main package; see ../../gen-gomod.sh.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
