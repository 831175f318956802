//go:build tools

// Package tools pins Ignition's validator main package (ignition-validate); see ../../gen-gomod.sh.
package tools

import _ "github.com/coreos/ignition/v2/validate"
