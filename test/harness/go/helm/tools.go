//go:build tools

// Package tools pins Helm's main package (the chart tests in test/e2e); see ../../gen-gomod.sh.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
