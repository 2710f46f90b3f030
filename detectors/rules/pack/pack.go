// Package pack owns nhisentry's default rule pack, embedded so the binary
// (the demo, a fresh install) has working rules without any file on disk.
package pack

import _ "embed"

// Default is the YAML of default.yaml.
//
//go:embed default.yaml
var Default []byte
