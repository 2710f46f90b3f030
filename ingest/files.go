package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFileBytes bounds a file read by ReadRecords (after inflation).
const MaxFileBytes = 1 << 30

// ReadRecords splits a log file into records the way a stream would deliver
// them and calls fn for each, with Topic set to name and Offset to the
// record's position (the line number for line-oriented files). It accepts:
//
//   - gzip (detected by its magic bytes) around any of the below;
//   - one record per line (NDJSON, text logs), blank lines skipped;
//   - a sequence of JSON documents, pretty-printed or not;
//   - a JSON array, whose elements are the records;
//   - a CloudTrail {"Records":[…]} file, which is one record (the decoder
//     splits it).
//
// A document that does not parse ends the document sequence: the rest of the
// file becomes one record, so the decoder reports it and nothing is skipped
// silently.
func ReadRecords(r io.Reader, name string, fn func(Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); IsGzip(magic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: gzip: %w", name, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxFileBytes {
		return fmt.Errorf("%s: larger than %d bytes", name, MaxFileBytes)
	}
	emit := func(n int, b []byte) error {
		return fn(Record{Topic: name, Offset: int64(n), Value: b})
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil
	}
	first, _, _ := bytes.Cut(trimmed, []byte("\n"))
	switch {
	case trimmed[0] == '[' && json.Valid(trimmed):
		var elems []json.RawMessage
		if err := json.Unmarshal(trimmed, &elems); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for i, e := range elems {
			if err := emit(i+1, e); err != nil {
				return err
			}
		}
		return nil
	case trimmed[0] == '{' && !json.Valid(bytes.TrimSpace(first)):
		return readDocuments(trimmed, emit)
	}
	n := 0
	for line := range bytes.Lines(data) {
		n++
		if line = bytes.TrimRight(line, "\r\n"); len(bytes.TrimSpace(line)) > 0 {
			if err := emit(n, line); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDocuments splits a sequence of (pretty-printed) JSON documents.
func readDocuments(data []byte, emit func(int, []byte) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var doc json.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			rest := bytes.TrimSpace(data[min(int(dec.InputOffset()), len(data)):])
			if len(rest) == 0 {
				rest = data
			}
			return emit(n, rest)
		}
		if err := emit(n, doc); err != nil {
			return err
		}
	}
}
