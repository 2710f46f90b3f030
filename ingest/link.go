package ingest

import (
	"strings"
	"sync"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Link is what an issuance event says about a credential: the identity it
// was issued to and when it was issued and expires.
type Link struct {
	Credential string
	Identity   schemas.Identity
	Issuer     string
	IssuedAt   time.Time
	ExpiresAt  time.Time // zero when unknown
}

// Linker remembers credential issuance so that later use of a credential
// resolves to the identity it was issued to and carries its issue and expiry
// times: an STS AssumeRole links the access key id to the role, a Vault token
// creation links the accessor, a certificate issuance links the serial.
// Events must be given in stream order; Linker is safe for concurrent use.
type Linker struct {
	mu    sync.Mutex
	links map[string]Link
	max   int
}

// DefaultMaxLinks bounds the links kept; past it, expired links go first.
const DefaultMaxLinks = 1_000_000

// NewLinker returns a linker keeping at most max links (0: DefaultMaxLinks).
func NewLinker(max int) *Linker {
	if max <= 0 {
		max = DefaultMaxLinks
	}
	return &Linker{links: map[string]Link{}, max: max}
}

// canonical maps canonical id prefixes (SPEC §2) to their kinds, so the
// subject of an issuance can be taken as the identity it was issued to.
var canonical = []struct {
	prefix string
	kind   schemas.IdentityKind
}{
	{"spiffe://", schemas.KindWorkload},
	{"aws:role/", schemas.KindRole},
	{"aws:user/", schemas.KindUser},
	{"gcp:sa/", schemas.KindServiceAccount},
	{"azure:sp/", schemas.KindServicePrinc},
	{"k8s:sa/", schemas.KindServiceAccount},
	{"apikey:", schemas.KindAPIKey},
	{"github:", schemas.KindWorkload},
}

// KindOf returns the kind of a canonical identity id, or false.
func KindOf(id string) (schemas.IdentityKind, bool) {
	for _, c := range canonical {
		if strings.HasPrefix(id, c.prefix) {
			return c.kind, true
		}
	}
	return "", false
}

// weak reports whether an identity says less than a credential link would:
// an address, a bare token or certificate, or an unknown kind.
func weak(id schemas.Identity) bool {
	switch id.Kind {
	case schemas.KindUnknown, schemas.KindToken, schemas.KindCertificate, "":
		return true
	}
	return false
}

// Add records a link directly (used when links are reloaded from storage).
func (l *Linker) Add(k Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(k)
}

// add keeps the latest issuance of a credential by issue time, not by
// arrival: records from several partitions arrive in no fixed order, and the
// links reloaded from storage after a restart are the latest by time too, so
// the same issuances always give the same links.
func (l *Linker) add(k Link) {
	if old, ok := l.links[k.Credential]; ok && k.IssuedAt.Before(old.IssuedAt) {
		return
	}
	if len(l.links) >= l.max {
		l.evict(k.IssuedAt)
	}
	l.links[k.Credential] = k
}

// evict drops links expired by now, or, when none has, an arbitrary tenth:
// memory stays bounded whatever the issuance rate.
func (l *Linker) evict(now time.Time) {
	for c, k := range l.links {
		if !k.ExpiresAt.IsZero() && k.ExpiresAt.Before(now) {
			delete(l.links, c)
		}
	}
	if len(l.links) < l.max {
		return
	}
	n := l.max / 10
	for c := range l.links {
		if n--; n < 0 {
			break
		}
		delete(l.links, c)
	}
}

// LinkLookup resolves a credential to its issuance link; detectors that judge
// credential use take one (Linker.Lookup).
type LinkLookup func(credential string) (Link, bool)

// Lookup returns the link of a credential.
func (l *Linker) Lookup(credential string) (Link, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.links[credential]
	return k, ok
}

// Len is the number of links held.
func (l *Linker) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.links)
}

// LinkOf returns the link an issuance event establishes, if any.
func LinkOf(ev *schemas.Event) (Link, bool) {
	is := ev.Issuance
	if is == nil || is.Credential == "" {
		return Link{}, false
	}
	k := Link{Credential: is.Credential, Issuer: is.Issuer, IssuedAt: ev.Time.Time, Identity: ev.Identity}
	if kind, ok := KindOf(is.Subject); ok {
		k.Identity = schemas.Identity{ID: is.Subject, Kind: kind}
	}
	if is.TTLSeconds > 0 {
		k.ExpiresAt = ev.Time.Add(time.Duration(is.TTLSeconds) * time.Second)
	}
	return k, true
}

// Apply links the events in order: an issuance records its credential; a use
// of a linked credential gets the credential's issue and expiry times, and
// an event whose identity is weak (an address, a bare token) is resolved to
// the identity the credential was issued to.
func (l *Linker) Apply(events []schemas.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range events {
		ev := &events[i]
		l.resolve(ev)
		// The link is recorded after the event's own identity is resolved,
		// so it names the identity the event is stored under: the links
		// reloaded from storage after a restart are then the same.
		if k, ok := LinkOf(ev); ok {
			l.add(k)
		}
	}
}

// resolve fills ev's credential times from its credential's link and
// replaces a weak identity with the linked one.
func (l *Linker) resolve(ev *schemas.Event) {
	if ev.Credential.ID == "" {
		return
	}
	k, ok := l.links[ev.Credential.ID]
	if !ok || (ev.Issuance != nil && ev.Issuance.Credential == ev.Credential.ID) {
		return
	}
	if ev.Credential.IssuedAt.IsZero() {
		ev.Credential.IssuedAt = schemas.At(k.IssuedAt)
	}
	if ev.Credential.ExpiresAt.IsZero() && !k.ExpiresAt.IsZero() {
		ev.Credential.ExpiresAt = schemas.At(k.ExpiresAt)
	}
	if weak(ev.Identity) {
		ev.Identity = k.Identity
	}
}
