package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
)

// DefaultMaxInflatedBytes bounds what one gzip record may inflate to, so a
// small compression bomb cannot exhaust memory.
const DefaultMaxInflatedBytes = 64 << 20

var gzipMagic = []byte{0x1f, 0x8b}

// IsGzip reports whether b starts like a gzip stream.
func IsGzip(b []byte) bool { return bytes.HasPrefix(b, gzipMagic) }

// Gunzip inflates b when it is gzip (CloudTrail delivers its files gzipped,
// and pipelines forward them as they are) and returns it unchanged when it is
// not. A broken stream or one that inflates past limit is a DecodeError.
func Gunzip(b []byte, limit int) ([]byte, *DecodeError) {
	if !IsGzip(b) {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, Errorf("gzip", ReasonCompression, "%v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, Errorf("gzip", ReasonCompression, "%v", err)
	}
	if len(out) > limit {
		return nil, Errorf("gzip", ReasonTooLarge, "inflates past the limit of %d bytes", limit)
	}
	return out, nil
}
