package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/memstore"
)

const baselineUsage = `usage:
  nhisentry baseline rebuild [--config FILE | --state FILE] [--full]
  nhisentry baseline show [--config FILE | --state FILE] [--json] IDENTITY
`

// baselineCmd runs `nhisentry baseline rebuild|show`.
func baselineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, baselineUsage)
		return errors.New("baseline: rebuild or show")
	}
	fs := flag.NewFlagSet("baseline "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); the clickhouse and baseline sections are used")
	state := fs.String("state", "", "embedded store snapshot (from scan --state) instead of ClickHouse")
	full := fs.Bool("full", false, "rebuild every identity, not only those with new events")
	asJSON := fs.Bool("json", false, "print the stored baseline as JSON")
	switch args[0] {
	case "rebuild", "show":
	default:
		fmt.Fprint(stderr, baselineUsage)
		return fmt.Errorf("baseline: unknown subcommand %q", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, errs := readConfig(*path)
	if *state == "" && (cfg.ClickHouse.Addr == "" || cfg.ClickHouse.Database == "") {
		errs = append(errs, errors.New("clickhouse.addr and clickhouse.database are required without --state"))
	}
	for _, err := range cfg.Baseline.Classes.Validate() {
		errs = append(errs, fmt.Errorf("baseline: %w", err))
	}
	if err := configErrors(*path, errs); err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	store, closeStore, err := openBaselineStore(ctx, cfg, *state, log)
	if err != nil {
		return err
	}
	defer closeStore()
	if args[0] == "rebuild" {
		if fs.NArg() != 0 {
			return errors.New("baseline rebuild: takes no arguments")
		}
		rb := baseline.NewRebuilder(store, nil, cfg.Baseline.Classes, cfg.Baseline.Rebuild, log)
		st, err := rb.Rebuild(ctx, *full)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebuilt %d baseline(s) and %d cohort(s) from %d changed identities in %v; rollups through %s\n",
			st.Built, st.Cohorts, st.Changed, st.Took.Round(time.Millisecond), st.Mark.UTC().Format(time.RFC3339))
		if *state != "" {
			return store.(*memstore.Store).Snapshot(*state)
		}
		return nil
	}
	if fs.NArg() != 1 {
		return errors.New("baseline show: one IDENTITY is required")
	}
	id := fs.Arg(0)
	b, cohort, err := loadBaseline(ctx, store, id)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("baseline show: no baseline stored for %q (run `nhisentry baseline rebuild` after its events are stored)", id)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	return printBaseline(stdout, b, cohort)
}

// loadBaseline reads id's stored baseline (nil when there is none) and, when
// it belongs to a cohort, the cohort's.
func loadBaseline(ctx context.Context, store baseline.Loader, id string) (b, cohort *baseline.Baseline, err error) {
	load := func(id string) (*baseline.Baseline, error) {
		var got *baseline.Baseline
		err := store.LoadBaselines(ctx, []string{id}, func(x *baseline.Baseline) error { got = x; return nil })
		return got, err
	}
	if b, err = load(id); err != nil || b == nil || b.Cohort == "" {
		return b, nil, err
	}
	cohort, err = load(baseline.CohortPrefix + b.Cohort)
	return b, cohort, err
}

// openBaselineStore opens the embedded store at state, or ClickHouse.
func openBaselineStore(ctx context.Context, cfg Config, state string, log *slog.Logger) (baseline.Store, func(), error) {
	if state != "" {
		s, err := memstore.Open(state)
		if err != nil {
			return nil, nil, err
		}
		return s, func() {}, nil
	}
	s, err := chstore.Open(ctx, cfg.ClickHouse, log)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}

// printBaseline writes b for a person to read: the figures a detector
// compares against, most telling first.
func printBaseline(w io.Writer, b *baseline.Baseline, cohort *baseline.Baseline) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04")
	}
	dur := func(s float64) string { return (time.Duration(s) * time.Second).Round(time.Second).String() }
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }

	row("identity", "%s (%s)", b.Identity.ID, b.Identity.Kind)
	if b.Identity.Name != "" {
		row("name", "%s", b.Identity.Name)
	}
	row("class", "%s", b.Class)
	row("built", "%s from events stored through %s (version %d)", day(b.BuiltAt), day(b.DataThrough), b.Version)
	row("seen", "first %s, last %s; %d events in %d active hours; silent for %s",
		day(b.FirstSeen), day(b.LastSeen), b.Events, b.Activity.ActiveHours, dur(b.Activity.Dormant))
	row("gaps", "longest %s, median %s", dur(b.Activity.LongestGap), dur(b.Activity.MedianGap))
	how := "by hour of week"
	if b.Rate.Pooled {
		how = "by hour of day (under three weeks of history)"
	}
	row("rate", "%.1f events/hour on average over %d hours; seasonal centre and spread %s", b.Rate.Mean, b.Rate.Hours, how)
	if b.Rate.Hours > 0 {
		row("", "%s", busiestHours(&b.Rate))
	}
	row("active", "hours of day (UTC, share of days active): %s", hourOfDay(b.Activity.HourOfDay))
	o := b.Outcome
	row("outcome", "%d success, %d failure (%.1f%%), %d denied (%.1f%%)", o.Success, o.Failure, 100*o.FailureRatio, o.Denied, 100*o.DeniedRatio)
	for _, q := range []struct {
		name string
		q    baseline.Quantiles
	}{{"bytes out", b.BytesOut}, {"bytes in", b.BytesIn}, {"duration ms", b.Duration}} {
		if q.q.Max > 1 { // sources that log no sizes or latencies leave only zeros
			row(q.name, "p50 ≤%.0f, p90 ≤%.0f, p99 ≤%.0f, max ≤%.0f (%d events)", q.q.P50, q.q.P90, q.q.P99, q.q.Max, q.q.Count)
		}
	}
	for _, ks := range b.Known {
		st := ks.Stability
		row("known "+ks.Dim, "%d values, stability %.2f, last grew %s, %d new in 7 days, %d in 28", st.Size, st.Score, day(st.LastGrew), st.NewLast7d, st.NewLast28d)
		for i, v := range ks.Values {
			if i == 5 {
				row("", "… %d more", len(ks.Values)-5)
				break
			}
			row("", "%s  ×%d  first %s  last %s", v.Value, v.Count, day(v.FirstSeen), day(v.LastSeen))
		}
	}
	if is := b.Issuance; is != nil {
		row("issuance", "%d issued; ttl %s, every %s; at most %d valid at once, %d now", is.Issued, dur(is.TTL), dur(is.Interval), is.MaxConcurrent, is.Concurrent)
	}
	if c := b.Cadence; c != nil {
		row("cadence", "runs every %s ±%s (%d runs); last %s, next expected %s", dur(c.Interval), dur(c.Jitter), c.Runs, day(c.LastRun), day(c.NextExpected))
	}
	if g := b.Graph; g != nil {
		row("mesh", "trust domain %q; calls %d edges; called by %d identities %s", g.TrustDomain, len(g.FanOut), g.FanIn, strings.Join(g.Callers, ", "))
		for i, e := range g.FanOut {
			if i == 5 {
				row("", "… %d more", len(g.FanOut)-5)
				break
			}
			row("", "→ %s %s ×%d", e.Peer, e.Route, e.Count)
		}
	}
	if b.Cohort != "" {
		if cohort != nil && cohort.CohortStats != nil {
			cs := cohort.CohortStats
			row("cohort", "%s: %d members, %.1f±%.1f events/hour per member", b.Cohort, len(cs.Members), cs.Rate, cs.Spread)
		} else {
			row("cohort", "%s (no other member yet)", b.Cohort)
		}
	}
	return tw.Flush()
}

// busiestHours lists the three hours with the highest centre: hours of
// week, or hours of day when the profile pools the days.
func busiestHours(r *baseline.Rate) string {
	top := []int{}
	hours := r.Centre[:]
	if r.Pooled {
		hours = r.Centre[:24]
	}
	for h := range hours {
		top = append(top, h)
		for i := len(top) - 1; i > 0 && r.Centre[top[i]] > r.Centre[top[i-1]]; i-- {
			top[i], top[i-1] = top[i-1], top[i]
		}
		if len(top) > 3 {
			top = top[:3]
		}
	}
	days := []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	parts := make([]string, 0, 3)
	for _, h := range top {
		day := days[h/24] + " "
		if r.Pooled {
			day = ""
		}
		parts = append(parts, fmt.Sprintf("%s%02d:00 %.1f±%.1f", day, h%24, r.Centre[h], r.Spread[h]))
	}
	return "busiest: " + strings.Join(parts, ", ")
}

// hourOfDay draws the 24 fractions as a bar per hour.
func hourOfDay(f [24]float64) string {
	bars := []rune(" ▁▂▃▄▅▆▇█")
	var sb strings.Builder
	for _, v := range f {
		sb.WriteRune(bars[int(min(max(v, 0), 1)*float64(len(bars)-1)+0.5)])
	}
	return "|" + sb.String() + "|"
}
