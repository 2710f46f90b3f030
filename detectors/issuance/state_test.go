package issuance

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// issueTo has creds issued to identity id at t, valid for ttl.
func (d *Detector) issueTo(id string, t time.Time, ttl time.Duration, creds ...string) {
	p := &baseline.Profile{Identity: schemas.Identity{ID: id}}
	for _, c := range creds {
		ev := schemas.Event{ID: c, Time: schemas.At(t), Identity: p.Identity,
			Issuance: &schemas.Issuance{Credential: c, CredentialType: "vault_token", TTLSeconds: int64(ttl / time.Second)}}
		in := detectors.NewInput(p, &ev, t)
		d.Detect(&in, nil)
	}
}

func (d *Detector) check(t *testing.T, identities, total int) {
	t.Helper()
	sum := 0
	for _, st := range d.ids.All() {
		sum += len(st.valid)
	}
	if d.ids.Len() != identities || d.total != total || sum != total {
		t.Fatalf("holding %d identities and %d credentials (counted %d), want %d and %d", d.ids.Len(), d.total, sum, identities, total)
	}
}

func creds(prefix string, n int) []string {
	cs := make([]string, n)
	for i := range cs {
		cs[i] = fmt.Sprint(prefix, i)
	}
	return cs
}

func TestStateBounds(t *testing.T) {
	t0 := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.MaxIdentities, cfg.MaxCredentials, cfg.MaxPerIdentity = 2, 4, 3

	d := New(cfg)
	d.issueTo("a", t0, time.Hour, creds("a", 5)...)
	d.check(t, 1, 3) // at most three per identity, the newest kept
	d.issueTo("b", t0, time.Hour, creds("b", 2)...)
	d.check(t, 1, 2) // five held: a, the least recently issuing, goes
	d.issueTo("c", t0, time.Hour, "c0")
	d.check(t, 2, 3)
	d.issueTo("c", t0, time.Hour, creds("c", 4)[1:]...)
	d.check(t, 1, 3) // c holds three, b goes
	if _, ok := d.ids.Peek("c"); !ok {
		t.Fatal("the identity just issued to was dropped")
	}

	d = New(cfg)
	d.issueTo("a", t0, time.Hour, "a0")
	d.issueTo("b", t0, time.Hour, "b0")
	d.issueTo("c", t0, time.Hour, "c0")
	d.check(t, 2, 2) // a third identity: a goes
	if _, ok := d.ids.Peek("a"); ok {
		t.Fatal("the oldest identity was kept")
	}

	d = New(DefaultConfig())
	d.issueTo("a", t0, time.Hour, "a0", "a1")
	d.issueTo("a", t0.Add(30*time.Minute), time.Hour, "a1") // a renewal is one credential
	d.check(t, 1, 2)
	d.issueTo("a", t0.Add(80*time.Minute), time.Hour, "a2") // a0 expired at 60m
	d.check(t, 1, 2)
	d.issueTo("a", t0.Add(5*time.Hour), 0, "a3") // no TTL: not held, and the rest expired
	d.check(t, 1, 0)
	d.issueTo("a", t0.Add(6*time.Hour), time.Duration(1<<62), "forever") // saturates, no overflow
	d.check(t, 1, 1)
	d.issueTo("a", t0.Add(7*time.Hour), time.Hour, "a4")
	d.check(t, 1, 2)
}
