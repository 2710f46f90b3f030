// Package response owns what happens to findings once detected: the sinks
// that deliver them (Kafka findings topic, ClickHouse, the log) and, in later
// work, the response policy, its safety guards and the provider adapters.
// Findings are plain schemas.Finding values, so response never imports the
// detectors.
package response
