package baseline

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/schemas"
)

// storedBaselines is a Loader over a fixed set of baselines.
type storedBaselines []*Baseline

func (s storedBaselines) LoadBaselines(_ context.Context, ids []string, fn func(*Baseline) error) error {
	for _, b := range s {
		if ids == nil || slices.Contains(ids, b.Identity.ID) {
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestCacheHoldsOnlyWhatItOwns(t *testing.T) {
	stored := storedBaselines{
		{Identity: schemas.Identity{ID: "a-1"}}, {Identity: schemas.Identity{ID: "a-2"}},
		{Identity: schemas.Identity{ID: "b-1"}}, {Identity: schemas.Identity{ID: "b-2"}},
	}
	ownsA := func(id string) bool { return strings.HasPrefix(id, "a-") }
	ownsB := func(id string) bool { return strings.HasPrefix(id, "b-") }
	cached := func(c *Cache) []string {
		var ids []string
		for id := range c.profiles {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	tests := []struct {
		name string
		run  func(c *Cache) (dropped int)
		want []string
		drop int
	}{
		{"load takes only owned identities", func(c *Cache) int {
			c.Own(ownsA)
			if err := c.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			return 0
		}, []string{"a-1", "a-2"}, 0},
		{"prepare skips what another instance owns", func(c *Cache) int {
			c.Own(ownsA)
			if err := c.Prepare(context.Background(), []string{"a-1", "b-1"}); err != nil {
				t.Fatal(err)
			}
			return 0
		}, []string{"a-1"}, 0},
		{"rebuilt baselines of other owners are not added", func(c *Cache) int {
			c.Own(ownsB)
			c.Apply(stored)
			return 0
		}, []string{"b-1", "b-2"}, 0},
		{"revoking drops the profiles and their bytes", func(c *Cache) int {
			c.Apply(stored)
			return c.Own(ownsB)
		}, []string{"b-1", "b-2"}, 2},
		{"nil owns everything again", func(c *Cache) int {
			c.Own(ownsA)
			c.Own(nil)
			if err := c.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			return 0
		}, []string{"a-1", "a-2", "b-1", "b-2"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(CacheOptions{Loader: stored})
			if dropped := tt.run(c); dropped != tt.drop {
				t.Errorf("dropped %d, want %d", dropped, tt.drop)
			}
			if got := cached(c); !slices.Equal(got, tt.want) {
				t.Errorf("cached %v, want %v", got, tt.want)
			}
			var bytes int64
			for p := c.head; p != nil; p = p.next {
				bytes += int64(p.accounted)
			}
			if st := c.Stats(); st.Bytes != bytes || st.Identities != len(tt.want) {
				t.Errorf("stats %+v, want %d bytes over %d identities", st, bytes, len(tt.want))
			}
		})
	}
}
