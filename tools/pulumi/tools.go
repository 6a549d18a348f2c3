//go:build tools

// Package tools pins the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) as a
// dependency of this wrapper module so that `go mod tidy` keeps it, and everything it needs,
// in go.mod and go.sum. scripts/setup-pulumi.sh builds it together with the Python language
// host in ./cmd/pulumi-language-python.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
