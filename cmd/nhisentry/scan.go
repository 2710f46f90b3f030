package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// scanBatch is how many events the engine handles at a time, as a Kafka
// batch would deliver them.
const scanBatch = 5000

// scanCmd runs the detection pipeline offline over files with the embedded
// store: findings as NDJSON on stdout, a summary on stderr. With --state the
// baselines persist between scans, so a second scan starts from what the
// first learned.
func scanCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); the baseline and detect sections are used")
	format := fs.String("format", formats.FormatAuto, "input format, or auto to detect it per record")
	state := fs.String("state", "", "embedded store snapshot: loaded when it exists, written at the end")
	dlPath := fs.String("dead-letters", "", "write records that cannot be decoded to this file as NDJSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return errors.New("scan: name one or more files, or - for standard input")
	}
	cfg, errs := readConfig(*path)
	for _, err := range cfg.Baseline.Classes.Validate() {
		errs = append(errs, fmt.Errorf("baseline: %w", err))
	}
	errs = append(errs, cfg.Detect.Builtin.Validate("detect.")...)
	if err := configErrors(*path, errs); err != nil {
		return err
	}
	dec, err := formats.ByName(*format)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	start := time.Now()
	log := newLogger(cfg.Log, stderr)

	// 1. Decode every file, then merge in event-time order as a stream
	// would deliver them (files from different sources overlap in time).
	dl, closeDL, err := openDeadLetters(*dlPath)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer closeDL()
	tallies := decodeTallies{}
	var events []schemas.Event
	err = decodeFiles(files, dec, stdin, dl, tallies, func(evs []schemas.Event) error {
		events = append(events, evs...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time.Time) })

	// 2. The embedded store and the same cache, detectors and engine as
	// `nhisentry run`.
	store := memstore.New()
	if *state != "" {
		if store, err = memstore.Open(*state); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	if len(cfg.Detect.Rules) == 0 {
		file, remove, err := defaultRulesFile()
		if err != nil {
			return err
		}
		defer remove()
		cfg.Detect.Rules = []string{file}
	}
	linker := ingest.NewLinker(0)
	dets, _, err := newDetectors(cfg.Detect, linker.Lookup, prometheus.NewRegistry(), log)
	if err != nil {
		return err
	}
	cache := baseline.NewCache(baseline.CacheOptions{Budget: cfg.Baseline.CacheBudget, Classes: cfg.Baseline.Classes, Loader: store})
	if err := cache.Load(ctx); err != nil {
		return err
	}
	// Findings go to stdout and the summary to stderr; per-finding and
	// per-rebuild log lines would only repeat them.
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	out := &ndjsonSink{w: bufio.NewWriterSize(stdout, 64<<10), byDetector: map[string]int{}}
	eng := engine.New(engine.Options{
		Cache: cache, Detectors: dets, Events: store, Sinks: []engine.FindingSink{out},
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		// Offline, the clock is the data's: rules comparing event time
		// with now see the time of the latest event.
		Now: func() time.Time { return out.now },
	})
	rebuild := cfg.Baseline.Rebuild
	rebuild.Clock = func() time.Time { return out.now }
	rb := baseline.NewRebuilder(store, cache, cfg.Baseline.Classes, rebuild, quiet)
	built := 0
	rebuildNow := func() error {
		st, err := rb.Rebuild(ctx, false)
		built += st.Built
		return err
	}
	// Baselines are rebuilt at every midnight of event time, as the service's
	// schedule would have done while the logs were written, so detectors
	// that need a built model work within one scan; event time makes the
	// result the same on every run.
	day := int64(-1)
	for i := 0; i < len(events); {
		n := min(scanBatch, len(events)-i)
		if d := events[i].Time.Unix() / 86400; d != day {
			if day >= 0 {
				if err := rebuildNow(); err != nil {
					return fmt.Errorf("scan: %w", err)
				}
			}
			day = d
		}
		// A batch ends at the next midnight.
		for j := i + 1; j < i+n; j++ {
			if events[j].Time.Unix()/86400 != day {
				n = j - i
				break
			}
		}
		batch := events[i : i+n]
		linker.Apply(batch)
		out.now = batch[len(batch)-1].Time.Time
		if err := eng.Handle(ctx, batch); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		i += n
	}
	if err := out.w.Flush(); err != nil {
		return fmt.Errorf("scan: write findings: %w", err)
	}

	// 3. Baselines from what was learned, kept for the next scan.
	if err := rebuildNow(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if *state != "" {
		if err := store.Snapshot(*state); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	printDecodeSummary(stderr, tallies)
	printScanSummary(stderr, len(events), cache.Len(), built, out.byDetector, time.Since(start))
	return nil
}

// ndjsonSink writes findings as NDJSON and counts them per detector or rule.
type ndjsonSink struct {
	w          *bufio.Writer
	byDetector map[string]int
	now        time.Time
}

func (s *ndjsonSink) Name() string { return "stdout" }

func (s *ndjsonSink) WriteFindings(_ context.Context, fs []schemas.Finding) error {
	enc := json.NewEncoder(s.w)
	for i := range fs {
		key := fs[i].Detector
		if fs[i].RuleID != "" {
			key += "/" + fs[i].RuleID
		}
		s.byDetector[key]++
		if err := enc.Encode(&fs[i]); err != nil {
			return err
		}
	}
	return nil
}

func printScanSummary(w io.Writer, events, identities, baselines int, byDetector map[string]int, took time.Duration) {
	names := make([]string, 0, len(byDetector))
	total := 0
	for k, n := range byDetector {
		names = append(names, k)
		total += n
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scanned %d events of %d identities in %v; %d baselines built; %d findings\n",
		events, identities, took.Round(time.Millisecond), baselines, total)
	if total > 0 {
		fmt.Fprintln(tw, "DETECTOR\tFINDINGS")
		for _, k := range names {
			fmt.Fprintf(tw, "%s\t%d\n", k, byDetector[k])
		}
	}
	tw.Flush()
}
