package memstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/gob"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

// loaded returns every baseline a store has.
func loaded(t *testing.T, s *Store) []*baseline.Baseline {
	t.Helper()
	var out []*baseline.Baseline
	if err := s.LoadBaselines(context.Background(), nil, func(b *baseline.Baseline) error {
		out = append(out, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// full is a store with rollups of every kind, baselines and a mark.
func full(t *testing.T) *Store {
	ctx := context.Background()
	s := New()
	write(t, s, corpus()...)
	err := s.SaveBaselines(ctx, []*baseline.Baseline{
		{Identity: schemas.Identity{ID: "aws:role/1/etl", Kind: schemas.KindRole}, Version: 4, Class: "batch",
			BuiltAt: t0, DataThrough: at(time.Hour), Events: 3,
			Known:    []baseline.KnownSet{{Dim: "action", Values: []baseline.KnownValue{{Value: "GET /", FirstSeen: t0, LastSeen: t0, Count: 3}}}},
			Cadence:  &baseline.Cadence{Runs: 2, Interval: 3600},
			Issuance: &baseline.IssuanceProfile{Issued: 2, TTL: 3600}},
		{Identity: schemas.Identity{ID: "apikey:gw:k1"}, Version: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMark(ctx, at(7*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.snap")
	for _, tc := range []struct {
		name   string
		make   func(*testing.T) *Store
		replay bool // the store holds corpus()
	}{
		{"empty", func(*testing.T) *Store { return New() }, false},
		{"full", full, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.make(t)
			if err := s.Snapshot(path); err != nil {
				t.Fatal(err)
			}
			if err := s.Snapshot(path); err != nil { // over an existing snapshot
				t.Fatal(err)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, from := range []time.Time{{}, at(time.Hour), at(25 * time.Hour)} {
				diffHistories(t, histories(t, r, nil, from), histories(t, s, nil, from))
			}
			if got, want := loaded(t, r), loaded(t, s); !reflect.DeepEqual(got, want) {
				t.Errorf("baselines\n got %+v\nwant %+v", got, want)
			}
			m1, _ := s.Mark(ctx)
			m2, _ := r.Mark(ctx)
			if !m1.Equal(m2) {
				t.Errorf("mark %v, want %v", m2, m1)
			}
			c1, n1, _ := s.Rollup(ctx, time.Time{})
			c2, n2, _ := r.Rollup(ctx, time.Time{})
			if !slices.Equal(c1, c2) || !n1.Equal(n2) {
				t.Errorf("rollup %v %v, want %v %v", c2, n2, c1, n1)
			}
			if tc.replay {
				// The seen ids came along: replaying the events changes nothing.
				write(t, r, corpus()[:11]...)
				if c, n, _ := r.Rollup(ctx, n2); len(c) != 0 || !n.Equal(n2) {
					t.Errorf("replay after Open changed %v (mark %v)", c, n)
				}
				diffHistories(t, histories(t, r, nil, time.Time{}), histories(t, s, nil, time.Time{}))
			}
			// New events move the restored clock forward even when the
			// wall clock is behind it.
			r.now = func() time.Time { return t0.Add(-1000 * time.Hour) }
			write(t, r, mk("after", "new", at(0)))
			if c, n, _ := r.Rollup(ctx, n2); !slices.Equal(c, []string{"new"}) || !n.After(n2) {
				t.Errorf("after Open: changed %v mark %v, want [new] after %v", c, n, n2)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("snapshot left files behind: %v", entries)
			}
		})
	}
}

func TestOpenMissingIsEmpty(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "none.snap"))
	if err != nil {
		t.Fatal(err)
	}
	if h := histories(t, s, nil, time.Time{}); len(h) != 0 {
		t.Errorf("histories %v", h)
	}
}

func TestSnapshotIntoMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "x.snap")
	if err := New().Snapshot(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one naming %s", err, path)
	}
}

// gobFile gzips the gob encoding of values, to forge snapshot files.
func gobFile(values ...any) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := gob.NewEncoder(zw)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
	}
	zw.Close()
	return buf.Bytes()
}

func TestOpenBadSnapshots(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.snap")
	if err := full(t).Snapshot(good); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(valid)
	flipped[len(flipped)/2] ^= 0x40
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "empty file"},
		{"not gzip", []byte("identity,events\nx,1\n"), "not a gzip"},
		{"gzip of garbage", gobFile("hello"), "corrupt or truncated"},
		{"truncated in the gzip header", valid[:5], "not a gzip"},
		{"truncated early", valid[:40], "corrupt or truncated"},
		{"truncated in the middle", valid[:len(valid)/2], "corrupt or truncated"},
		{"truncated before the checksum", valid[:len(valid)-4], "corrupt or truncated"},
		{"last byte missing", valid[:len(valid)-1], "corrupt or truncated"},
		{"bit flipped", flipped, "corrupt or truncated"},
		{"trailing garbage", append(slices.Clone(valid), "junk"...), "corrupt or truncated"},
		{"unknown version", gobFile(fileHeader{Magic: formatMagic, Version: 99}, fileV1{}), "format version 99 is not supported"},
		{"another file's magic", gobFile(fileHeader{Magic: "other", Version: 1}), "not a memstore snapshot"},
		{"unknown dimension", gobFile(fileHeader{Magic: formatMagic, Version: formatVersion},
			fileV1{Identities: []fileIdentity{{ID: "x", Values: []fileValue{{Dim: "colour", Value: "red"}}}}}), `unknown dimension "colour"`},
		{"identity without id", gobFile(fileHeader{Magic: formatMagic, Version: formatVersion},
			fileV1{Identities: []fileIdentity{{Kind: "role"}}}), "identity without an id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".snap")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path)
			if err == nil {
				t.Fatalf("opened (%d histories)", len(histories(t, s, nil, time.Time{})))
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want one naming %s and saying %q", err, path, c.want)
			}
		})
	}
	if _, err := Open(good); err != nil {
		t.Errorf("the valid snapshot: %v", err)
	}
}
