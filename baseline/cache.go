package baseline

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nhisentry/nhisentry/schemas"
)

// Loader reads stored baselines so a Cache starts from what is already
// known (cold start by backfill) and takes back identities it evicted.
type Loader interface {
	// LoadBaselines calls fn with the newest stored baseline of each
	// identity in ids (every identity when ids is nil).
	LoadBaselines(ctx context.Context, ids []string, fn func(*Baseline) error) error
}

// DefaultBudget is the cache's default memory budget: a million typical
// identities (SPEC §11).
const DefaultBudget = 2 << 30

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Budget bounds the estimated bytes of all cached profiles; the least
	// recently active identities are evicted beyond it. Zero means
	// DefaultBudget.
	Budget int64
	// Classes assigns identity classes; nil means DefaultClasses.
	Classes Classes
	// Loader fills the cache on Load and Prepare; nil loads nothing.
	Loader Loader
}

// CacheStats counts what the cache did.
type CacheStats struct {
	Identities int
	Bytes      int64
	Loaded     uint64 // profiles filled from stored baselines
	Evicted    uint64
	// EvictedDirty counts evictions of profiles holding learning the stored
	// baselines did not have yet; the next rebuild stores it, and until
	// then a reloaded profile misses it.
	EvictedDirty uint64
}

// Cache holds one Profile per identity within a memory budget, in recency
// order. A Profile is only touched by the goroutine that holds the cache's
// lock; the engine processes a batch under one Lock/Unlock pair so per-event
// cost stays a map lookup.
type Cache struct {
	mu       sync.Mutex
	opts     CacheOptions
	profiles map[string]*Profile
	// head is the most recently used profile, tail the least.
	head, tail *Profile
	// relearn holds, per cohort, the Unix second of its latest deploy.
	relearn map[string]int64
	// cohorts holds the cohort baselines by cohort key; members share them.
	cohorts map[string]*CohortModel
	// owns says which identities this instance detects for; nil means all.
	// With scale-out each identity's state lives on one instance only.
	owns  func(id string) bool
	stats CacheStats
}

// NewCache returns an empty cache.
func NewCache(opts CacheOptions) *Cache {
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.Classes == nil {
		opts.Classes = DefaultClasses()
	}
	return &Cache{opts: opts, profiles: make(map[string]*Profile), relearn: map[string]int64{}, cohorts: map[string]*CohortModel{}}
}

// Classes is the cache's class configuration.
func (c *Cache) Classes() Classes { return c.opts.Classes }

// Load fills the cache with every stored baseline, before any event is
// processed, so no stored history is mistaken for new.
func (c *Cache) Load(ctx context.Context) error {
	return c.load(ctx, nil)
}

// Prepare loads the stored baselines of the identities in ids that the cache
// does not hold (evicted, or never seen by this process), so the batch that
// names them sees their history. Call it before Lock.
func (c *Cache) Prepare(ctx context.Context, ids []string) error {
	c.mu.Lock()
	var missing []string
	for _, id := range ids {
		if _, ok := c.profiles[id]; !ok {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	return c.load(ctx, missing)
}

func (c *Cache) load(ctx context.Context, ids []string) error {
	if c.opts.Loader == nil {
		return nil
	}
	err := c.opts.Loader.LoadBaselines(ctx, ids, func(b *Baseline) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.applyCohort(b) || !c.owned(b.Identity.ID) {
			return nil
		}
		if p := c.profiles[b.Identity.ID]; p == nil {
			p = c.insert(b.Identity)
			p.Apply(b, c.opts.Classes)
			c.charge(p)
			c.stats.Loaded++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load baselines: %w", err)
	}
	return nil
}

// Apply merges freshly built baselines into the profiles the cache holds
// and adds the rest while the budget allows.
func (c *Cache) Apply(bs []*Baseline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range bs {
		if c.applyCohort(b) || !c.owned(b.Identity.ID) {
			continue
		}
		p := c.profiles[b.Identity.ID]
		if p == nil {
			p = c.insert(b.Identity)
		}
		p.Apply(b, c.opts.Classes)
		c.charge(p)
	}
}

// Own makes the cache hold only the identities owns reports (nil: all) and
// drops the profiles it no longer owns, returning how many. A detector
// instance calls it when the consumer group hands it or takes away
// partitions of the repartition topic; a dropped identity's state is in the
// store, from where its next owner loads it.
func (c *Cache) Own(owns func(id string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owns = owns
	dropped := 0
	for id, p := range c.profiles {
		if !c.owned(id) {
			c.remove(p)
			dropped++
		}
	}
	return dropped
}

func (c *Cache) owned(id string) bool { return c.owns == nil || c.owns(id) }

// applyCohort keeps b when it is a cohort baseline and reports whether it
// was.
func (c *Cache) applyCohort(b *Baseline) bool {
	if !strings.HasPrefix(b.Identity.ID, CohortPrefix) {
		return false
	}
	if b.CohortStats != nil {
		c.cohorts[b.CohortStats.Cohort] = newCohortModel(b.CohortStats)
	}
	return true
}

// Cohort is the cohort baseline of p's cohort, or nil. Call it between
// Lock and Unlock.
func (c *Cache) Cohort(p *Profile) *CohortModel {
	if p.cohort == "" {
		return nil
	}
	return c.cohorts[p.cohort]
}

// Lock takes the cache for a batch; Get and Observe may only be called
// between Lock and Unlock.
func (c *Cache) Lock() { c.mu.Lock() }

// Unlock releases the cache.
func (c *Cache) Unlock() { c.mu.Unlock() }

// Get returns id's profile, creating an empty one for a new identity, and
// marks it most recently used.
func (c *Cache) Get(id schemas.Identity) *Profile {
	p := c.profiles[id.ID]
	if p == nil {
		p = c.insert(id)
		c.charge(p)
	} else {
		c.touch(p)
	}
	if len(c.relearn) > 0 && p.cohort != "" {
		if at, ok := c.relearn[p.cohort]; ok {
			p.relearnUntil = max(p.relearnUntil, at+int64(p.class.Relearn.Seconds()))
		}
	}
	return p
}

// Observe folds ev into p (from Get) after detection, starts a re-learning
// period for the workload ev deploys, if any, and keeps the cache within
// its budget.
func (c *Cache) Observe(p *Profile, ev *schemas.Event) {
	p.Observe(ev)
	if cohort, ok := DeployOf(ev); ok {
		c.relearn[cohort] = max(c.relearn[cohort], ev.Time.Unix())
		c.pruneRelearn(ev.Time.Unix())
	}
	c.charge(p)
}

// pruneRelearn drops deploys older than a day once there are many, so the
// map stays as small as the number of recent deploys; no class re-learns
// for a day.
func (c *Cache) pruneRelearn(now int64) {
	if len(c.relearn) < 1024 {
		return
	}
	for k, at := range c.relearn {
		if at < now-86400 {
			delete(c.relearn, k)
		}
	}
}

// insert adds an empty profile for id at the head of the recency list.
func (c *Cache) insert(id schemas.Identity) *Profile {
	p := &Profile{Identity: id, class: c.opts.Classes.Match(id)}
	c.profiles[id.ID] = p
	c.pushFront(p)
	return p
}

// charge accounts for p's current size and evicts from the tail while the
// cache is over budget, never p itself.
func (c *Cache) charge(p *Profile) {
	size := p.Size()
	c.stats.Bytes += int64(size - p.accounted)
	p.accounted = size
	for c.stats.Bytes > c.opts.Budget && c.tail != nil && c.tail != p {
		v := c.tail
		c.remove(v)
		c.stats.Evicted++
		if v.dirty {
			c.stats.EvictedDirty++
		}
	}
}

// remove forgets p.
func (c *Cache) remove(p *Profile) {
	c.unlink(p)
	delete(c.profiles, p.Identity.ID)
	c.stats.Bytes -= int64(p.accounted)
}

func (c *Cache) touch(p *Profile) {
	if c.head != p {
		c.unlink(p)
		c.pushFront(p)
	}
}

func (c *Cache) pushFront(p *Profile) {
	p.prev, p.next = nil, c.head
	if c.head != nil {
		c.head.prev = p
	}
	c.head = p
	if c.tail == nil {
		c.tail = p
	}
}

func (c *Cache) unlink(p *Profile) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		c.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		c.tail = p.prev
	}
	p.prev, p.next = nil, nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Identities = len(c.profiles)
	return s
}

// Len is the number of identities cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.profiles)
}
