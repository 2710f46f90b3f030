package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nhisentry/nhisentry/baseline"
)

var errNoIdentity = errors.New("baseline without an identity id")

// SaveBaselines stores one new version of each baseline. Only the newest
// version of an identity is kept (a baseline older than the stored one is
// dropped; an equal version replaces it, as a later insert does on
// chstore). The batch is all or nothing: a baseline that cannot be encoded
// fails it before anything is stored.
func (s *Store) SaveBaselines(ctx context.Context, bs []*baseline.Baseline) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	enc := make([]storedBaseline, len(bs))
	for i, b := range bs {
		if b == nil || b.Identity.ID == "" {
			return fmt.Errorf("save baselines: %w", errNoIdentity)
		}
		j, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("save baseline %s: %w", b.Identity.ID, err)
		}
		enc[i] = storedBaseline{version: b.Version, json: j}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range bs {
		if cur, ok := s.baselines[b.Identity.ID]; ok && cur.version > b.Version {
			continue
		}
		s.baselines[b.Identity.ID] = enc[i]
	}
	return nil
}

// LoadBaselines calls fn with a fresh copy of the newest baseline of each
// identity in ids that has one, in the order given (every identity, in id
// order, when ids is nil).
func (s *Store) LoadBaselines(ctx context.Context, ids []string, fn func(*baseline.Baseline) error) error {
	s.mu.Lock()
	if ids == nil {
		ids = slices.Sorted(maps.Keys(s.baselines))
	}
	type found struct {
		id   string
		json []byte
	}
	out := make([]found, 0, len(ids))
	for _, id := range ids {
		if b, ok := s.baselines[id]; ok {
			out = append(out, found{id, b.json}) // stored bytes are never modified
		}
	}
	s.mu.Unlock()
	for _, f := range out {
		if err := ctx.Err(); err != nil {
			return err
		}
		var b baseline.Baseline
		if err := json.Unmarshal(f.json, &b); err != nil {
			return fmt.Errorf("load baseline %s: %w", f.id, err)
		}
		if err := fn(&b); err != nil {
			return err
		}
	}
	return nil
}
