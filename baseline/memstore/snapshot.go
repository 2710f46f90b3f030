package memstore

import (
	"bufio"
	"compress/gzip"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

// The snapshot file is a gzip stream holding two gob values: a fileHeader,
// then the body of the version it names. The header comes first so a file
// written by another version is rejected by name before its body is read.
// The file types below are the format: they are separate from the store's
// and baseline's types so a change there cannot silently change the file,
// and dimensions are stored by name, not number. Change them only together
// with formatVersion.
const (
	formatMagic   = "nhisentry-memstore"
	formatVersion = 1
)

type fileHeader struct {
	Magic   string
	Version int
}

type fileV1 struct {
	Clock      int64
	Mark       time.Time
	Identities []fileIdentity
	Baselines  []fileBaseline
}

type fileIdentity struct {
	ID        string
	Kind      string
	KindAt    time.Time
	Name      string
	NameAt    time.Time
	Changed   int64
	Hours     []fileHour
	Values    []fileValue
	Issuances []fileIssuance
}

type fileHour struct {
	Hour                     int64
	Events, Denied, Failures uint64
	BytesIn, BytesOut        uint64
	DurationMS               float64
	First, Last              time.Time
	BytesInHist              map[uint8]uint64
	BytesOutHist             map[uint8]uint64
	DurationHist             map[uint8]uint64
	Seen                     []string
}

type fileValue struct {
	Day         int64
	Dim         string
	Value       string
	First, Last time.Time
	Count       uint64
}

type fileIssuance struct {
	Credential, Issuer string
	IssuedAt           time.Time
	TTL                int64 // nanoseconds
}

type fileBaseline struct {
	Identity string
	Version  int64
	JSON     []byte
}

// Snapshot writes the whole store (rollups, seen event ids, baselines, mark
// and clock) to path atomically: it writes a temporary file in the same
// directory, syncs it and renames it over path, so a crash leaves either the
// old snapshot or the new one, never a torn file. The store is copied under
// its lock and written outside it, so writers wait only for the copy. The
// file is private to the user (0600): it names every identity and what it
// does.
func (s *Store) Snapshot(path string) (err error) {
	body := s.export()
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("snapshot %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<16)
	zw := gzip.NewWriter(bw)
	enc := gob.NewEncoder(zw)
	if err := enc.Encode(fileHeader{Magic: formatMagic, Version: formatVersion}); err != nil {
		return err
	}
	if err := enc.Encode(body); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Sync the directory so the rename itself survives a crash. Some
	// file systems cannot sync a directory; the file is complete either way.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// export copies the store into the file form.
func (s *Store) export() *fileV1 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &fileV1{Clock: s.clock, Mark: s.mark}
	for _, x := range s.ids {
		fi := fileIdentity{
			ID: x.id, Kind: string(x.kind), KindAt: x.kindAt, Name: x.name, NameAt: x.nameAt,
			Changed: x.changed,
			Hours:   make([]fileHour, 0, len(x.hours)),
			Values:  make([]fileValue, 0, len(x.values)),
		}
		for _, hr := range x.hours {
			r := &hr.r
			fh := fileHour{
				Hour: r.Hour, Events: r.Events, Denied: r.Denied, Failures: r.Failures,
				BytesIn: r.BytesIn, BytesOut: r.BytesOut, DurationMS: r.DurationMS,
				First: r.First, Last: r.Last,
				BytesInHist: cloneHist(r.BytesInHist), BytesOutHist: cloneHist(r.BytesOutHist),
				DurationHist: cloneHist(r.DurationHist),
				Seen:         make([]string, 0, len(hr.seen)),
			}
			for id := range hr.seen {
				fh.Seen = append(fh.Seen, id)
			}
			fi.Hours = append(fi.Hours, fh)
		}
		for k, row := range x.values {
			fi.Values = append(fi.Values, fileValue{
				Day: k.day, Dim: dimName(k.dim), Value: k.value, First: row.first, Last: row.last, Count: row.count,
			})
		}
		for _, is := range x.issuances {
			fi.Issuances = append(fi.Issuances, fileIssuance{
				Credential: is.Credential, Issuer: is.Issuer, IssuedAt: is.IssuedAt, TTL: int64(is.TTL),
			})
		}
		f.Identities = append(f.Identities, fi)
	}
	for id, b := range s.baselines {
		f.Baselines = append(f.Baselines, fileBaseline{Identity: id, Version: b.version, JSON: b.json})
	}
	return f
}

func cloneHist(h baseline.Hist) map[uint8]uint64 {
	m := make(map[uint8]uint64, len(h))
	for k, v := range h {
		m[k] = v
	}
	return m
}

// Open loads the snapshot at path, or returns an empty store when there is
// none yet. A file that exists but cannot be read completely is an error
// naming it: starting empty would silently relearn every baseline.
func Open(path string) (*Store, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	defer f.Close()
	body, err := readSnapshot(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	s, err := load(body)
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	return s, nil
}

func readSnapshot(r io.Reader) (*fileV1, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file, not a snapshot")
		}
		return nil, fmt.Errorf("not a gzip-compressed snapshot: %w", err)
	}
	dec := gob.NewDecoder(zr)
	var hdr fileHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, fmt.Errorf("corrupt or truncated snapshot header: %w", err)
	}
	if hdr.Magic != formatMagic {
		return nil, fmt.Errorf("not a memstore snapshot (magic %q)", hdr.Magic)
	}
	if hdr.Version != formatVersion {
		return nil, fmt.Errorf("snapshot format version %d is not supported (this build reads version %d)", hdr.Version, formatVersion)
	}
	var body fileV1
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("corrupt or truncated snapshot: %w", err)
	}
	// Read to the end so gzip checks its length and CRC: a file cut after
	// the last gob byte, or damaged anywhere, is caught here.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("corrupt or truncated snapshot: %w", err)
	}
	return &body, nil
}

// load builds a store from the file form, checking what the store relies on.
func load(f *fileV1) (*Store, error) {
	s := New()
	s.clock, s.mark = f.Clock, f.Mark
	for i := range f.Identities {
		fi := &f.Identities[i]
		if fi.ID == "" {
			return nil, errors.New("identity without an id")
		}
		if s.ids[fi.ID] != nil {
			return nil, fmt.Errorf("identity %s stored twice", fi.ID)
		}
		x := &identity{
			id: fi.ID, kind: schemas.IdentityKind(fi.Kind), kindAt: fi.KindAt, name: fi.Name, nameAt: fi.NameAt,
			changed: fi.Changed,
			hours:   make(map[int64]*hour, len(fi.Hours)),
			values:  make(map[valueKey]*valueRow, len(fi.Values)),
		}
		for _, fh := range fi.Hours {
			if x.hours[fh.Hour] != nil {
				return nil, fmt.Errorf("identity %s: hour %d stored twice", fi.ID, fh.Hour)
			}
			hr := &hour{
				r: baseline.HourRollup{
					Hour: fh.Hour, Events: fh.Events, Denied: fh.Denied, Failures: fh.Failures,
					BytesIn: fh.BytesIn, BytesOut: fh.BytesOut, DurationMS: fh.DurationMS,
					First: fh.First, Last: fh.Last,
					BytesInHist: hist(fh.BytesInHist), BytesOutHist: hist(fh.BytesOutHist), DurationHist: hist(fh.DurationHist),
				},
				seen: make(map[string]struct{}, len(fh.Seen)),
			}
			for _, id := range fh.Seen {
				hr.seen[id] = struct{}{}
			}
			x.hours[fh.Hour] = hr
		}
		for _, fv := range fi.Values {
			d, ok := parseDimName(fv.Dim)
			if !ok {
				return nil, fmt.Errorf("identity %s: unknown dimension %q", fi.ID, fv.Dim)
			}
			k := valueKey{day: fv.Day, dim: d, value: fv.Value}
			if x.values[k] != nil {
				return nil, fmt.Errorf("identity %s: value %s %q of day %d stored twice", fi.ID, fv.Dim, fv.Value, fv.Day)
			}
			x.values[k] = &valueRow{first: fv.First, last: fv.Last, count: fv.Count}
			if d == baseline.DimPeer {
				s.addCaller(fv.Value, x.id, fv.Day)
			}
		}
		for _, is := range fi.Issuances {
			x.issuances = append(x.issuances, baseline.IssuanceRollup{
				Credential: is.Credential, Issuer: is.Issuer, IssuedAt: is.IssuedAt, TTL: time.Duration(is.TTL),
			})
		}
		s.ids[x.id] = x
	}
	for _, fb := range f.Baselines {
		if fb.Identity == "" {
			return nil, errors.New("baseline without an identity id")
		}
		if cur, ok := s.baselines[fb.Identity]; ok && cur.version > fb.Version {
			continue
		}
		s.baselines[fb.Identity] = storedBaseline{version: fb.Version, json: fb.JSON}
	}
	return s, nil
}

// hist turns a decoded map into a Hist; gob decodes an empty map as nil, and
// the store's rollups always hold non-nil histograms.
func hist(m map[uint8]uint64) baseline.Hist {
	if m == nil {
		return baseline.Hist{}
	}
	return baseline.Hist(m)
}
