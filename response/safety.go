package response

import (
	"fmt"
	"sync"
	"time"
)

// guard holds the budgets of one window and the circuit breaker. It is
// seeded from the audit trail at start, so a restart does not refill the
// budgets.
type guard struct {
	mu       sync.Mutex
	b        Budgets
	spent    []spend // actions taken within the window, oldest first
	openedAt time.Time
	openWhy  string
}

type spend struct {
	at       time.Time
	provider string
	radius   int
}

func newGuard(b Budgets) *guard { return &guard{b: b} }

func (g *guard) trim(now time.Time) {
	i := 0
	for i < len(g.spent) && now.Sub(g.spent[i].at) >= g.b.Window {
		i++
	}
	g.spent = g.spent[i:]
}

// record counts an action taken at time at (seeding, or a human-approved
// action that bypassed the guards).
func (g *guard) record(at time.Time, provider string, radius int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.spent = append(g.spent, spend{at, provider, radius})
}

// allow decides whether automation may take an action of provider with
// this blast radius now; if so it is counted. Otherwise it says why, and
// opened reports that this call tripped the breaker.
func (g *guard) allow(now time.Time, provider string, radius int) (why string, opened bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trim(now)
	if !g.openedAt.IsZero() {
		if now.Sub(g.openedAt) < g.b.Cooldown {
			return fmt.Sprintf("circuit breaker open since %s (%s): automation stopped", g.openedAt.Format(time.RFC3339), g.openWhy), false
		}
		g.openedAt, g.openWhy = time.Time{}, ""
	}
	limit := g.b.PerProvider
	if n, ok := g.b.Providers[provider]; ok {
		limit = n
	}
	used, blast := 0, 0
	for _, s := range g.spent {
		if s.provider == provider {
			used++
		}
		blast += s.radius
	}
	if used >= limit {
		return fmt.Sprintf("budget of provider %s spent (%d actions per %s)", provider, limit, g.b.Window), false
	}
	if blast+radius > g.b.BlastRadius {
		g.openedAt = now
		g.openWhy = fmt.Sprintf("blast radius %d+%d would pass the budget of %d per %s", blast, radius, g.b.BlastRadius, g.b.Window)
		return "circuit breaker opened: " + g.openWhy, true
	}
	g.spent = append(g.spent, spend{now, provider, radius})
	return "", false
}

// open reports whether the breaker is open, and why.
func (g *guard) open(now time.Time) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.openedAt.IsZero() || now.Sub(g.openedAt) >= g.b.Cooldown {
		return false, ""
	}
	return true, g.openWhy
}

// openSince opens the breaker as of at (its cooldown counts from then).
func (g *guard) openSince(at time.Time, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.openedAt, g.openWhy = at, why
}

// reset closes the breaker and forgets the window's spending.
func (g *guard) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.openedAt, g.openWhy, g.spent = time.Time{}, "", nil
}
