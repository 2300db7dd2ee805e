//go:build tools

// Package tools pins the commands the chart test builds.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
