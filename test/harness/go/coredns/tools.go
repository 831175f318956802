//go:build tools

// Package tools pins CoreDNS's main package (the real node's cluster DNS); see ../../gen-gomod.sh.
package tools

import _ "github.com/coredns/coredns"
