// Package providertest helps the tests of response providers: a handler
// wrapper that answers the next requests with injected faults (a throttling
// or 5xx reply, a reply that comes too late) before letting the real fake
// answer, and checks of how a provider classified an error.
package providertest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/response"
)

// Fault is one injected answer.
type Fault struct {
	Status int               // reply status; 0 lets the wrapped handler answer (after Delay)
	Body   string            // reply body
	Header map[string]string // reply headers, e.g. Content-Type
	// Delay holds the request this long, or until the client gives up,
	// before answering: longer than a provider's timeout, it is a timeout.
	Delay time.Duration
}

// Faults wraps Next, answering each request with the next queued fault
// while there is one.
type Faults struct {
	Next http.Handler

	mu       sync.Mutex
	queue    []Fault
	requests int
}

// Inject queues faults for the next requests, in order.
func (f *Faults) Inject(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, faults...)
}

// Requests is how many requests arrived, faulted or not.
func (f *Faults) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *Faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	var fault Fault
	faulted := len(f.queue) > 0
	if faulted {
		fault, f.queue = f.queue[0], f.queue[1:]
	}
	f.mu.Unlock()
	if !faulted {
		f.Next.ServeHTTP(w, r)
		return
	}
	if fault.Delay > 0 {
		// The server notices a client that gave up only once the body is
		// read; keep it for the wrapped handler.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(fault.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	if fault.Status == 0 {
		f.Next.ServeHTTP(w, r)
		return
	}
	for k, v := range fault.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(fault.Status)
	_, _ = w.Write([]byte(fault.Body))
}

// Class is how a provider's error is meant to be treated.
type Class int

const (
	OK            Class = iota // no error
	Retryable                  // an error, not Permanent
	Permanent                  // response.Permanent
	Irreversible               // response.ErrIrreversible
	NotApplicable              // response.ErrNotApplicable
)

func (c Class) String() string {
	return [...]string{"no error", "retryable", "permanent", "irreversible", "not applicable"}[c]
}

// Classify says which Class err is.
func Classify(err error) Class {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, response.ErrIrreversible):
		return Irreversible
	case errors.Is(err, response.ErrNotApplicable):
		return NotApplicable
	case response.IsPermanent(err):
		return Permanent
	}
	return Retryable
}

// WantClass fails t unless err is of class want.
func WantClass(t testing.TB, err error, want Class) {
	t.Helper()
	if got := Classify(err); got != want {
		t.Fatalf("error %v is %s, want %s", err, got, want)
	}
}
