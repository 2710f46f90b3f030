package ingest

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestLinker(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	ci := schemas.Identity{ID: "aws:role/1/ci", Kind: schemas.KindRole}
	assume := schemas.Event{
		ID: "assume", Time: schemas.At(t0), Identity: ci, Action: "sts:AssumeRole",
		Issuance: &schemas.Issuance{Credential: "ASIAX", Subject: "aws:role/1/deploy", TTLSeconds: 3600},
	}
	use := schemas.Event{ID: "use", Time: schemas.At(t0.Add(time.Minute)), Identity: schemas.Identity{ID: "aws:role/1/deploy", Kind: schemas.KindRole},
		Credential: schemas.Credential{ID: "ASIAX"}}
	tokenCreate := schemas.Event{
		ID: "token", Time: schemas.At(t0), Identity: schemas.Identity{ID: "k8s:sa/c/ns/app", Kind: schemas.KindServiceAccount},
		Issuance: &schemas.Issuance{Credential: "hmac-sha256:acc", Subject: "k8s:sa/c/ns/app", TTLSeconds: 600},
	}
	tokenUse := schemas.Event{ID: "token-use", Time: schemas.At(t0.Add(time.Hour)),
		Identity:   schemas.Identity{ID: "vault:accessor/hmac-sha256:acc", Kind: schemas.KindToken},
		Credential: schemas.Credential{ID: "hmac-sha256:acc"}}
	stranger := schemas.Event{ID: "other", Identity: schemas.Identity{ID: "ip:10.0.0.1", Kind: schemas.KindUnknown},
		Credential: schemas.Credential{ID: "never-issued"}}

	l := NewLinker(0)
	evs := []schemas.Event{assume, use, tokenCreate, tokenUse, stranger}
	l.Apply(evs)

	if got := evs[1]; got.Credential.IssuedAt.Time != t0 || got.Credential.ExpiresAt.Time != t0.Add(time.Hour) || got.Identity.ID != "aws:role/1/deploy" {
		t.Errorf("STS key use: %+v", got)
	}
	if got := evs[3]; got.Identity.ID != "k8s:sa/c/ns/app" || got.Credential.ExpiresAt.Time != t0.Add(10*time.Minute) {
		t.Errorf("a bare Vault accessor must resolve to the identity it was issued to: %+v", got)
	}
	if got := evs[4]; got.Identity.ID != "ip:10.0.0.1" || !got.Credential.IssuedAt.IsZero() {
		t.Errorf("an unknown credential must stay as it was: %+v", got)
	}
	if got := evs[0]; !got.Credential.IssuedAt.IsZero() {
		t.Errorf("the issuance event itself is not a use: %+v", got)
	}
	if k, ok := l.Lookup("ASIAX"); !ok || k.Identity.Kind != schemas.KindRole {
		t.Errorf("Lookup(ASIAX) = %+v, %v", k, ok)
	}
}

func TestLinkerStaysBounded(t *testing.T) {
	l := NewLinker(100)
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i := range 1000 {
		l.Add(Link{Credential: string(rune('a'+i%26)) + time.Duration(i).String(), IssuedAt: t0.Add(time.Duration(i) * time.Minute), ExpiresAt: t0.Add(time.Duration(i)*time.Minute + 5*time.Minute)})
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("%d links held, limit 100", n)
	}
}
