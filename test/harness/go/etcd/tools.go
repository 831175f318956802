//go:build tools

// Package tools pins the etcd server main package; see ../../gen-gomod.sh.
package tools

import _ "go.etcd.io/etcd/server/v3"
