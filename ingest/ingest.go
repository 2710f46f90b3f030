package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Record is one message read from a topic. Value is owned by the caller; a
// Decoder must copy what it keeps.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Time      time.Time
}

// Decoder turns one record of a single format into normalized events.
type Decoder interface {
	// Format is the stable name of the format, e.g. "cloudtrail".
	Format() string
	// Decode appends the events found in rec to dst and returns the extended
	// slice. A record that cannot be decoded returns a *DecodeError and
	// appends nothing; a record may hold several events (a CloudTrail
	// {"Records":[…]} file). Decode must be safe for concurrent use.
	Decode(dst []schemas.Event, rec Record) ([]schemas.Event, error)
}

// Normalized is implemented by decoders of records that already hold
// normalized events (the repartition topic between the ingest and detector
// stages): Run keeps the events' ingest time and provenance, and does not
// count them as ingested again.
type Normalized interface {
	Normalized()
}

// Dead-letter reasons. They are bounded so they can be metric labels; the
// detail of each error goes into the dead-letter record, never a label.
const (
	ReasonTooLarge      = "too_large"
	ReasonInvalidJSON   = "invalid_json"
	ReasonInvalidUTF8   = "invalid_utf8"
	ReasonTooDeep       = "too_deep"
	ReasonTooManyFields = "too_many_fields"
	ReasonMissingField  = "missing_field"
	ReasonBadField      = "bad_field"
	ReasonNotAnEvent    = "not_an_event"
	ReasonUnknownFormat = "unknown_format"
	ReasonCompression   = "bad_compression"
)

// DecodeError says why a record could not be decoded.
type DecodeError struct {
	Format string
	Reason string // one of the Reason constants
	Detail string // human detail: the field, the parser's message
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s: %s: %s", e.Format, e.Reason, e.Detail)
}

// Errorf builds a *DecodeError.
func Errorf(format, reason, detail string, args ...any) *DecodeError {
	return &DecodeError{Format: format, Reason: reason, Detail: fmt.Sprintf(detail, args...)}
}

// AsDecodeError returns err as a *DecodeError, wrapping any other error under
// ReasonInvalidJSON so that every decode failure has a reason.
func AsDecodeError(format string, err error) *DecodeError {
	var de *DecodeError
	if errors.As(err, &de) {
		return de
	}
	return &DecodeError{Format: format, Reason: ReasonInvalidJSON, Detail: err.Error()}
}

// Handler processes the events decoded from one batch. The batch is
// acknowledged (offsets committed) only when Handle returns nil; an error
// stops the loop and the batch is read again after a restart.
type Handler interface {
	Handle(ctx context.Context, events []schemas.Event) error
}

// DeadLetter is a record that could not be decoded, with why.
type DeadLetter struct {
	Record Record
	Err    *DecodeError
}

// DeadLetterWriter stores dead letters durably. Write returns only after the
// letters are stored, because the batch they came from is committed next.
type DeadLetterWriter interface {
	WriteDeadLetters(ctx context.Context, letters []DeadLetter) error
}
