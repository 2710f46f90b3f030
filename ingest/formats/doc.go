// Package formats is the one place that lists the decoders built into
// nhisentry and looks them up by their configured format name.
package formats
