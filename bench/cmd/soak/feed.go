package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/bench/internal/e2e"
)

// window is the simulated time one gen.Generate call covers. The generator
// holds a call's events of each hour in memory and sorts them before
// emitting the first, so one call for the whole soak would hold an hour of
// traffic (gigabytes at thousands of records a second). Every window
// reuses the seed, so the population, and with it the working set of the
// service's baseline cache, stays the same for the whole soak: growth is
// then the service's, not the input's. The population is new to the
// service, so its baselines stay in their learning period (a day or more of
// event time) and normal traffic raises no findings; scenarios, injected
// into every window, keep findings, and so latency readings, coming.
const window = time.Minute

// scenarios are the generator's attack scenarios injected into every
// window: all of them but the API-key volume spike, which alone would
// multiply the generator's work by six (only to be thinned away), and the
// shadow certificate, whose Certificate Transparency records have no input
// topic here.
var scenarios = []string{
	gen.ScenarioStolenCredential, gen.ScenarioPrivilegeProbing, gen.ScenarioLateralMovement,
	gen.ScenarioClonedCredential, gen.ScenarioExfiltration, gen.ScenarioDormant,
	gen.ScenarioRevokedToken, gen.ScenarioLongTTLBurst, gen.ScenarioCIRoleIAM,
}

// oversupply is how much more traffic than the target rate the generator
// is asked for; thinning keeps the target. The generator's hour-of-week
// profile moves the default population's rate between about 0.47× and
// 1.63× its mean (measured over a simulated week), so 2.5× leaves every
// hour of the week above the target.
const oversupply = 2.5

// ahead is how many seconds of records the generator may run ahead of the
// sender: enough to cover generating the next window, so sending never
// waits on it and records leave at their event time.
const ahead = 5

// feed produces rate records per second of event time in [start,
// start+d), each when its event time comes, so event time to finding
// delivery is the pipeline's latency.
func feed(ctx context.Context, cl *kgo.Client, seed int64, rate float64, start time.Time, d time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the generator when sending fails
	records := make(chan gen.Record, max(1, int(rate*ahead)))
	generated := make(chan error, 1)
	go func() {
		defer close(records)
		generated <- generate(ctx, seed, rate, start, d, records)
	}()
	p := e2e.NewProducer(cl)
	for r := range records {
		if err := p.Send(ctx, r, true); err != nil {
			return err
		}
	}
	if err := <-generated; err != nil {
		return err
	}
	return p.Flush(ctx)
}

// generate sends the thinned records of [start, start+d) to out, window by
// window.
func generate(ctx context.Context, seed int64, rate float64, start time.Time, d time.Duration, out chan<- gen.Record) error {
	th := newThinner(rate)
	end := start.Add(d)
	for ws := start; ws.Before(end); ws = ws.Add(window) {
		we := ws.Add(window)
		if we.After(end) {
			we = end
		}
		cfg := gen.Config{Seed: seed, Start: ws, Duration: we.Sub(ws),
			EventsPerIdentityHour: e2e.EventsPerIdentityHour(rate) * oversupply, Scenarios: scenarios}
		_, err := gen.Generate(cfg, func(r gen.Record) error {
			// An attack scenario may run past its window's end (minutes,
			// in a window of one); what is past the end is dropped, so
			// records stay in event-time order across windows and the
			// sender never waits on one while the next window's are due.
			if !r.Time.Before(we) || !th.keep(r.Time) {
				return nil
			}
			select {
			case out <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			return fmt.Errorf("generate records from %s: %w", ws.Format(time.RFC3339), err)
		}
	}
	return nil
}

// thinner is a token bucket over event time: it keeps at most rate records
// per second of event time, in bursts of at most a tenth of a second's
// worth, and drops the rest. Thinning a Poisson stream leaves a Poisson
// stream, and going by event time rather than the clock keeps the same
// records on every run of a seed.
type thinner struct {
	rate, burst, tokens float64
	last                time.Time
}

func newThinner(rate float64) *thinner {
	burst := max(1, rate/10)
	return &thinner{rate: rate, burst: burst, tokens: burst}
}

// keep decides on the next record; records come in event-time order.
func (t *thinner) keep(at time.Time) bool {
	if !t.last.IsZero() {
		t.tokens = min(t.burst, t.tokens+t.rate*at.Sub(t.last).Seconds())
	}
	t.last = at
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}
