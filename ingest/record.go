package ingest

import "github.com/nhisentry/nhisentry/schemas"

// RecordLimit returns the record size limit of a decoder whose
// MaxRecordBytes is n: n itself, or DefaultMaxRecordBytes when n is 0 (the
// zero value of a decoder) or negative.
func RecordLimit(n int) int {
	if n <= 0 {
		return DefaultMaxRecordBytes
	}
	return n
}

// CheckSize returns a too_large *DecodeError of format when raw is longer
// than limit bytes, and nil otherwise.
func CheckSize(format string, raw []byte, limit int) *DecodeError {
	if len(raw) > limit {
		return Errorf(format, ReasonTooLarge, "%d bytes, limit %d", len(raw), limit)
	}
	return nil
}

// UnwrapRecord is the front half of decoders of log lines that collectors
// may wrap: it enforces the size limit on the record as read (wrapper
// included) and returns the line inside any wrapper (see Unwrap). It does
// not validate the line; that is the decoder's job.
func UnwrapRecord(format string, raw []byte, limit int) ([]byte, *DecodeError) {
	if de := CheckSize(format, raw, limit); de != nil {
		return nil, de
	}
	return Unwrap(raw), nil
}

// Provenance is the Kafka position of r, as an event records it.
func (r Record) Provenance() schemas.Provenance {
	return schemas.Provenance{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}
