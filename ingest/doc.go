// Package ingest owns the way records enter nhisentry: the Record read from a
// topic, the Decoder seam that turns a record into normalized events, the
// typed DecodeError that sends a record to the dead-letter topic, identity
// resolution to the canonical identity strings of SPEC §2, and Run, the loop
// that reads batches, decodes them, hands the events to a Handler and
// acknowledges the batch only after the Handler succeeded.
//
// Decoders live in one subpackage per telemetry family (mesh, gateway,
// cloudaudit, issuance); formats lists them in one place.
package ingest
