package baseline

import (
	"context"
	"fmt"
	"sync"

	"github.com/nhisentry/nhisentry/schemas"
)

// Loader reads stored history so a Cache starts from what is already known
// (cold start by backfill) instead of relearning after every restart.
type Loader interface {
	// LoadSeeds calls fn once per identity with stored history. fn must not
	// retain the seed.
	LoadSeeds(ctx context.Context, fn func(*Seed)) error
}

// Cache holds one Profile per identity. A Profile is only touched by the
// goroutine that holds the cache's lock; the engine processes a batch under
// one Lock/Unlock pair so per-event cost stays a map lookup.
type Cache struct {
	mu       sync.Mutex
	profiles map[string]*Profile
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{profiles: make(map[string]*Profile)}
}

// Load fills the cache from l. It is called before any event is processed.
func (c *Cache) Load(ctx context.Context, l Loader) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := l.LoadSeeds(ctx, func(s *Seed) {
		p := c.profiles[s.Identity.ID]
		if p == nil {
			p = &Profile{}
			c.profiles[s.Identity.ID] = p
		}
		p.Apply(s)
	})
	if err != nil {
		return fmt.Errorf("load baselines: %w", err)
	}
	return nil
}

// Lock takes the cache for a batch; Get may only be called between Lock and
// Unlock.
func (c *Cache) Lock() { c.mu.Lock() }

// Unlock releases the cache.
func (c *Cache) Unlock() { c.mu.Unlock() }

// Get returns id's profile, creating an empty one for a new identity.
func (c *Cache) Get(id schemas.Identity) *Profile {
	p := c.profiles[id.ID]
	if p == nil {
		p = &Profile{Identity: id}
		c.profiles[id.ID] = p
	}
	return p
}

// Len is the number of identities cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.profiles)
}
