package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// decodeTally counts what one format did.
type decodeTally struct {
	records, events int
	reasons         map[string]int
}

// decodeTallies holds a decodeTally per format.
type decodeTallies map[string]*decodeTally

func (ts decodeTallies) of(format string) *decodeTally {
	if ts[format] == nil {
		ts[format] = &decodeTally{reasons: map[string]int{}}
	}
	return ts[format]
}

// decodeFiles decodes every record of files with dec and passes each
// record's events to emit (the slice is reused), in file order. Records that
// cannot be decoded are counted in tallies and, when dl is set, written to
// it with their reason and bytes; nothing is dropped silently.
func decodeFiles(files []string, dec ingest.Decoder, stdin io.Reader, dl *json.Encoder, tallies decodeTallies, emit func([]schemas.Event) error) error {
	var events []schemas.Event
	for _, name := range files {
		r, delivered, closeFn, err := openInput(name, stdin)
		if err != nil {
			return err
		}
		err = ingest.ReadRecords(r, name, func(rec ingest.Record) error {
			// Formats without a year (klog) take it from when the record
			// was delivered: the file's modification time here.
			rec.Time = delivered
			var err error
			events, err = dec.Decode(events[:0], rec)
			if err != nil {
				de := ingest.AsDecodeError(dec.Format(), err)
				t := tallies.of(de.Format)
				t.records++
				t.reasons[de.Reason]++
				if dl != nil {
					return dl.Encode(deadLetterJSON(rec, de))
				}
				return nil
			}
			if len(events) > 0 {
				t := tallies.of(events[0].Source.Format)
				t.records++
				t.events += len(events)
			} else {
				tallies.of(formatOf(dec, rec.Value)).records++ // valid but not an event (a Vault request entry)
			}
			for i := range events {
				events[i].Provenance = schemas.Provenance{Topic: rec.Topic, Offset: rec.Offset}
			}
			return emit(events)
		})
		closeFn()
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeCmd prints the normalized events of files as NDJSON on stdout and a
// per-format summary on stderr; with --dead-letters, what could not be
// decoded goes to that file with the reason and the original bytes.
func decodeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", formats.FormatAuto, "input format, or auto to detect it per record")
	dlPath := fs.String("dead-letters", "", "write records that cannot be decoded to this file as NDJSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return errors.New("decode: name one or more files, or - for standard input")
	}
	dec, err := formats.ByName(*format)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	dl, closeDL, err := openDeadLetters(*dlPath)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	defer closeDL()
	out := bufio.NewWriterSize(stdout, 256<<10)
	defer out.Flush()
	enc := json.NewEncoder(out)
	linker := ingest.NewLinker(0)
	tallies := decodeTallies{}
	err = decodeFiles(files, dec, stdin, dl, tallies, func(events []schemas.Event) error {
		linker.Apply(events)
		for i := range events {
			if err := enc.Encode(&events[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	printDecodeSummary(stderr, tallies)
	return nil
}

// openDeadLetters creates the --dead-letters file; with no path it returns
// a nil encoder, and records that cannot be decoded are only counted.
func openDeadLetters(path string) (*json.Encoder, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return json.NewEncoder(f), func() { f.Close() }, nil
}

// formatOf names the format dec applies to raw: the detected one under auto.
func formatOf(dec ingest.Decoder, raw []byte) string {
	if a, ok := dec.(*formats.Auto); ok {
		if d := a.Detect(raw); d != nil {
			return d.Format()
		}
	}
	return dec.Format()
}

// openInput opens a file (or stdin for "-") and says when its records were
// delivered: the file's modification time, or now for stdin.
func openInput(name string, stdin io.Reader) (io.Reader, time.Time, func(), error) {
	if name == "-" {
		return stdin, time.Now(), func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, time.Time{}, nil, err
	}
	return f, st.ModTime(), func() { f.Close() }, nil
}

// deadLetterJSON is the form of a dead letter in the --dead-letters file:
// the raw bytes as text when they are valid UTF-8, else base64.
func deadLetterJSON(rec ingest.Record, de *ingest.DecodeError) map[string]any {
	m := map[string]any{
		"file": rec.Topic, "record": rec.Offset, "format": de.Format, "reason": de.Reason, "detail": de.Detail,
	}
	if utf8.Valid(rec.Value) {
		m["raw"] = string(rec.Value)
	} else {
		m["raw_base64"] = base64.StdEncoding.EncodeToString(rec.Value)
	}
	return m
}

func printDecodeSummary(w io.Writer, tallies decodeTallies) {
	names := make([]string, 0, len(tallies))
	for f := range tallies {
		names = append(names, f)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FORMAT\tRECORDS\tEVENTS\tDEAD-LETTERED\tREASONS")
	for _, f := range names {
		t := tallies[f]
		dead := 0
		var reasons []string
		for r, n := range t.reasons {
			dead += n
			reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", f, t.records, t.events, dead, strings.Join(reasons, ","))
	}
	tw.Flush()
}
