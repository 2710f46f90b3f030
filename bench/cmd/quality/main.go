// Command quality measures detection quality: it generates labeled telemetry
// with bench/gen, runs `nhisentry scan` over it and the naive "new terms"
// method over the same events (`nhisentry decode`), scores both against the
// labels with bench/quality and prints the two side by side.
//
//	go run ./bench/cmd/quality [--seed 1] [--days 14] [--train-days 4] [--all-scenarios] [--platform=true] [--lifecycle=true] [--out DIR] [--bin PATH]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/bench/quality"
	"github.com/nhisentry/nhisentry/schemas"
)

// start is the simulated start of every run: a Monday, midnight UTC.
var start = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "quality:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quality", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "generator seed")
	days := fs.Int("days", 14, "simulated days of telemetry")
	all := fs.Bool("all-scenarios", false, "inject every scenario bench/gen knows, not only its four default ones")
	platform := fs.Bool("platform", true, "also generate the platform's logs (Kubernetes audit, cert-manager, SPIRE, CT)")
	lifecycle := fs.Bool("lifecycle", true, "with --platform, also generate Kubernetes controllers and cron jobs, AI agents calling tools, and churn: deploys adding an action, new replicas")
	trainDays := fs.Int("train-days", 4, "first days that only train; findings are scored from then on, for both methods")
	out := fs.String("out", "", "keep the telemetry, labels.ndjson and findings.ndjson in this directory (default: a temporary one, removed at the end)")
	bin := fs.String("bin", "", "nhisentry binary (default: built from ./cmd/nhisentry into the output directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *days < 1 || *trainDays < 0 || *trainDays >= *days {
		return fmt.Errorf("want --days ≥ 1 and 0 ≤ --train-days < --days, have %d and %d", *days, *trainDays)
	}
	began := time.Now()
	dir := *out
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "nhisentry-quality-"); err != nil {
			return err
		}
		// A 14-day run writes about 350 MB of telemetry.
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if *bin == "" {
		*bin = filepath.Join(dir, "nhisentry")
		if err := command(stderr, nil, "go", "build", "-o", *bin, "./cmd/nhisentry"); err != nil {
			return fmt.Errorf("build nhisentry: %w", err)
		}
	}

	cfg := gen.Config{Seed: *seed, Start: start, Duration: time.Duration(*days) * 24 * time.Hour, Attacks: true, Platform: *platform, Lifecycle: *platform && *lifecycle}
	if *all {
		cfg.Scenarios = gen.AllScenarios
	}
	files, labels, records, err := generate(cfg, dir)
	if err != nil {
		return err
	}
	from := start.Add(time.Duration(*trainDays) * 24 * time.Hour)
	for _, l := range labels {
		if l.Start.Before(from) {
			return fmt.Errorf("label %s starts at %v, inside the %d training days: lower --train-days", l.Scenario, l.Start, *trainDays)
		}
	}

	// No --state: the scan learns from this run's telemetry only, even when
	// --out is reused.
	scanStart := time.Now()
	conf := filepath.Join(dir, "nhisentry.yaml")
	if err := os.WriteFile(conf, []byte(scanConfig), 0o644); err != nil {
		return err
	}
	findings, err := scan(*bin, dir, conf, files, stderr)
	if err != nil {
		return err
	}
	scanTook := time.Since(scanStart)
	events, err := decode(*bin, files, stderr)
	if err != nil {
		return err
	}

	opts := quality.Options{From: from, Grace: quality.DefaultGrace}
	idDays := quality.IdentityDays(events, from)
	methods := []quality.Method{
		{Name: "nhisentry", Report: quality.Score(findings, labels, opts, idDays)},
		{Name: "new terms (14 d)", Report: quality.Score(quality.NewTerms(events, quality.NewTermsWindow, from), labels, opts, idDays)},
	}
	fmt.Fprintf(stdout, "seed %d, %d days from %s, %d records, %d events, %d labels; scored from day %d (%d identity-days); grace %v\n",
		*seed, *days, start.Format(time.DateOnly), records, len(events), len(labels), *trainDays, idDays, opts.Grace)
	fmt.Fprintf(stdout, "scan %v, whole run %v on %d CPUs, %s\n\n",
		scanTook.Round(time.Second), time.Since(began).Round(time.Second), runtime.NumCPU(), runtime.Version())
	return quality.WriteTable(stdout, methods)
}

// scanConfig is the configuration the scan runs with: the defaults, and
// the organization's domain, without which the shadow-certificate check
// (issuance_use) has no names to watch in Certificate Transparency.
const scanConfig = "detect:\n  issuance_use:\n    org_domains: [" + gen.OrgDomain + "]\n"

// generate writes one NDJSON file per format and the labels (NDJSON) into
// dir, and returns the telemetry files, the labels and the record count.
func generate(cfg gen.Config, dir string) ([]string, []gen.Label, int, error) {
	type file struct {
		f *os.File
		w *bufio.Writer
	}
	out := map[string]file{}
	var names []string
	all := slices.Concat(gen.Formats, gen.PlatformFormats)
	for _, format := range all {
		name := filepath.Join(dir, format+".ndjson")
		f, err := os.Create(name)
		if err != nil {
			return nil, nil, 0, err
		}
		defer f.Close()
		out[format] = file{f, bufio.NewWriterSize(f, 256<<10)}
	}
	records := 0
	written := map[string]bool{}
	labels, err := gen.Generate(cfg, func(r gen.Record) error {
		w := out[r.Format].w
		records++
		written[r.Format] = true
		if _, err := w.Write(r.Value); err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("generate: %w", err)
	}
	for _, format := range all {
		if err := out[format].w.Flush(); err != nil {
			return nil, nil, 0, fmt.Errorf("write %s: %w", format, err)
		}
		if err := out[format].f.Close(); err != nil {
			return nil, nil, 0, fmt.Errorf("write %s: %w", format, err)
		}
		name := filepath.Join(dir, format+".ndjson")
		if !written[format] {
			// Not asked for: no empty file for the scan to read.
			if err := os.Remove(name); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		names = append(names, name)
	}
	lf, err := os.Create(filepath.Join(dir, "labels.ndjson"))
	if err != nil {
		return nil, nil, 0, err
	}
	defer lf.Close()
	if err := gen.WriteLabels(lf, labels); err != nil {
		return nil, nil, 0, fmt.Errorf("write labels: %w", err)
	}
	return names, labels, records, lf.Close()
}

// scan runs `nhisentry scan` with the configuration file conf, keeping its
// findings in dir/findings.ndjson, and reads them back. Its summary goes to
// stderr.
func scan(bin, dir, conf string, files []string, stderr io.Writer) ([]schemas.Finding, error) {
	name := filepath.Join(dir, "findings.ndjson")
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := command(stderr, f, bin, append([]string{"scan", "--config", conf}, files...)...); err != nil {
		return nil, fmt.Errorf("nhisentry scan: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var findings []schemas.Finding
	err = readNDJSON(f, func(dec *json.Decoder) error {
		var fd schemas.Finding
		if err := dec.Decode(&fd); err != nil {
			return err
		}
		findings = append(findings, fd)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return findings, nil
}

// decode runs `nhisentry decode` and keeps what the naive method and the
// identity-day count need of each event.
func decode(bin string, files []string, stderr io.Writer) ([]quality.Event, error) {
	cmd := exec.Command(bin, append([]string{"decode"}, files...)...)
	cmd.Stderr = io.Discard // a per-format summary the scan already printed
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nhisentry decode: %w", err)
	}
	var events []quality.Event
	readErr := readNDJSON(pipe, func(dec *json.Decoder) error {
		var e struct {
			Time     schemas.Time `json:"time"`
			Identity struct {
				ID string `json:"id"`
			} `json:"identity"`
			Action string `json:"action"`
		}
		if err := dec.Decode(&e); err != nil {
			return err
		}
		events = append(events, quality.Event{Time: e.Time.Time, Identity: e.Identity.ID, Action: e.Action})
		return nil
	})
	if readErr != nil {
		io.Copy(io.Discard, pipe) // let decode finish writing, or Wait would block
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("nhisentry decode: %w", err)
	}
	if readErr != nil {
		return nil, fmt.Errorf("nhisentry decode: read events: %w", readErr)
	}
	fmt.Fprintf(stderr, "decoded %d events for the new-terms method\n", len(events))
	return events, nil
}

// readNDJSON calls next until the stream ends.
func readNDJSON(r io.Reader, next func(*json.Decoder) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	for {
		if err := next(dec); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// command runs name with args, its standard error passed through and its
// standard output to stdout (discarded when nil).
func command(stderr io.Writer, stdout io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}
