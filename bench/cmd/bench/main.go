// Command bench measures throughput and latency: decode+normalize+detect per
// core in process next to a parse-only pass over the same records, then
// Kafka → nhisentry → ClickHouse and the findings topic end to end, with
// `nhisentry run` as a subprocess reading an in-process Kafka-protocol
// broker (kfake). It prints one table; figures are informational and never
// fail a build.
//
//	go run ./bench/cmd/bench [--records 100000] [--backlog 300000] [--live-rate 5000] [--live-for 20s] [--bin PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/nhisentry/nhisentry/bench/internal/e2e"
)

// benchStart is the simulated start of the replayed records: a Monday,
// midnight UTC.
var benchStart = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)

// errEnough stops the generator once enough records were taken.
var errEnough = errors.New("enough records")

func main() { e2e.Main("bench", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "generator seed")
	records := fs.Int("records", 100_000, "records for the in-process passes")
	o := e2eOptions{}
	fs.IntVar(&o.backlog, "backlog", 300_000, "records produced before nhisentry starts (the sustained figure)")
	fs.IntVar(&o.liveRate, "live-rate", 5000, "records per second of the live phase (the latency figure)")
	fs.DurationVar(&o.liveFor, "live-for", 20*time.Second, "duration of the live phase")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when nhisentry has not read a phase's records by then")
	fs.IntVar(&o.instances, "instances", 1, "nhisentry processes; more than one scale out through the repartition topic")
	o.service.Register(fs, "nhisentry_bench")
	skipE2E := fs.Bool("in-process-only", false, "skip the end-to-end run (no ClickHouse needed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.seed = *seed
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	dir, err := os.MkdirTemp("", "nhisentry-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	rulesFile, err := e2e.WriteRulesFile(dir)
	if err != nil {
		return err
	}

	logf("generating %d records for the in-process passes", *records)
	recs, err := generateRecords(*seed, *records)
	if err != nil {
		return err
	}
	logf("in-process passes on one core")
	in, err := runInProcess(recs, rulesFile)
	if err != nil {
		return err
	}
	recs = nil // the end-to-end run should not carry them in its memory

	var endToEnd *e2eResult
	if !*skipE2E {
		if err := o.service.BuildIfUnset(ctx, dir, stderr, logf); err != nil {
			return err
		}
		r, err := runEndToEnd(ctx, o, rulesFile, logf)
		if err != nil {
			return err
		}
		endToEnd = &r
	}
	printTable(stdout, *seed, in, endToEnd)
	return nil
}

func printTable(w io.Writer, seed int64, in inProcResult, res *e2eResult) {
	fmt.Fprintf(w, "\nmachine: %d cores (runtime.NumCPU), %s %s/%s; seed %d\n\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, seed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tnote")
	fmt.Fprintf(tw, "parse only (goccy/go-json into any), 1 core\t%.0f records/s\t%d mixed records\n", perSec(in.records, in.parse), in.records)
	fmt.Fprintf(tw, "decode+normalize, 1 core\t%.0f events/s\t%.0f records/s, %d events\n", perSec(in.events, in.decode), perSec(in.records, in.decode), in.events)
	fmt.Fprintf(tw, "decode+normalize+detect, 1 core\t%.0f events/s\t%.0f records/s, %d findings\n", perSec(in.events, in.full), perSec(in.records, in.full), in.findings)
	fmt.Fprintf(tw, "ratio full path / parse only (records/s)\t%.2f\t\n", perSec(in.records, in.full)/perSec(in.records, in.parse))
	if res != nil {
		fmt.Fprintf(tw, "Kafka → nhisentry → ClickHouse + findings, sustained\t%.0f events/s\t%.0f records/s, %d backlog records, %d instance(s)\n", res.sustainedEvents, res.sustained, res.backlog, res.instances)
		fmt.Fprintf(tw, "event-to-finding latency p50 / p99\t%s / %s\t%.0f findings, live %d records at %.0f/s\n", e2e.FormatSeconds(res.p50), e2e.FormatSeconds(res.p99), res.findings, res.live, res.liveRate)
		fmt.Fprintf(tw, "bytes per cached identity\t%.0f\t%.0f identities cached\n", res.bytesPerIdentity, res.identities)
		fmt.Fprintf(tw, "peak memory (RSS of nhisentry)\t%.0f MiB\tsampled every 250 ms; the largest instance\n", res.peakRSS/(1<<20))
	}
	tw.Flush()
}
