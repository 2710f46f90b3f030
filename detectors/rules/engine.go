package rules

import (
	"sync/atomic"

	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Engine is the detector the pipeline holds: it evaluates the current Set
// and swaps in a new one on Reload. Reload compiles the new set completely
// before the swap, so a broken file leaves the rules that worked running, and
// Detect calls already under way finish on the set they started with.
type Engine struct {
	opts  Options
	paths []string
	cur   atomic.Pointer[Set]
	errs  atomic.Uint64 // shared by every set this engine loads
}

var _ detectors.Detector = (*Engine)(nil)

// NewEngine loads paths (files or directories, as for Load) and returns an
// engine running them. It fails if the initial load fails: starting with no
// rules because of a typo would be a silent loss of coverage.
func NewEngine(opts Options, paths ...string) (*Engine, error) {
	e := &Engine{opts: opts, paths: append([]string(nil), paths...)}
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload reads the engine's paths again. On success the new rules replace
// the old ones; on error the old rules stay and the error lists every
// problem found.
func (e *Engine) Reload() error {
	s, err := e.opts.load(&e.errs, e.paths)
	if err != nil {
		return err
	}
	e.cur.Store(s)
	return nil
}

// Set returns the rules currently in force.
func (e *Engine) Set() *Set { return e.cur.Load() }

// Name implements detectors.Detector.
func (e *Engine) Name() string { return "rules" }

// Detect implements detectors.Detector with the current set.
func (e *Engine) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	return e.cur.Load().Detect(in, dst)
}

// Errors returns how many rule evaluations have failed since the engine
// started, across reloads.
func (e *Engine) Errors() uint64 { return e.errs.Load() }
