// Command soak runs nhisentry for a long time at a fixed input rate, to
// show that it does not leak. Like bench/cmd/bench it runs `nhisentry run`
// as a subprocess reading an in-process Kafka-protocol broker (kfake) and
// writing to a ClickHouse; the seeded generator feeds the broker at --rate
// records per second for --duration. Every --interval it prints a row:
// records produced and consumed (committed offsets of the service's group),
// the lag between them, the service's resident memory, heap in use and
// goroutines from its /metrics, and the event-to-finding latency of that
// interval. At the end it prints a verdict computed from the series. It is
// not part of CI and the verdict never fails a build.
//
//	go run ./bench/cmd/soak [--rate 5000] [--duration 10m] [--interval 30s] [--bin PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/nhisentry/nhisentry/bench/internal/e2e"
)

func main() { e2e.Main("soak", run) }

type options struct {
	seed               int64
	rate               float64
	duration, interval time.Duration
	service            e2e.Flags
	dir                string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.Int64Var(&o.seed, "seed", 1, "generator seed")
	fs.Float64Var(&o.rate, "rate", 5000, "records per second produced")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to produce")
	fs.DurationVar(&o.interval, "interval", 30*time.Second, "time between rows")
	o.service.Register(fs, "nhisentry_soak")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.rate <= 0 || o.interval <= 0 || o.duration < o.interval {
		return errors.New("--rate and --interval must be positive and --duration at least one --interval")
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "soak: "+format+"\n", a...) }

	dir, err := os.MkdirTemp("", "nhisentry-soak")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	if err := o.service.BuildIfUnset(ctx, dir, stderr, logf); err != nil {
		return err
	}
	return soak(ctx, o, stdout, logf)
}

// row is one interval's reading.
type row struct {
	elapsed                 time.Duration
	produced, consumed, lag int64
	rss, heap, goroutines   float64
	findings, p50, p99      float64 // findings delivered in the interval, their latency in seconds
}

func soak(ctx context.Context, o options, stdout io.Writer, logf func(string, ...any)) error {
	rulesFile, err := e2e.WriteRulesFile(o.dir)
	if err != nil {
		return err
	}
	b, err := e2e.StartBroker()
	if err != nil {
		return err
	}
	defer b.Close()
	svc, err := e2e.StartService(ctx, e2e.ServiceOptions{Flags: o.service, Brokers: b.Addrs(),
		Dir: o.dir, RulesFile: rulesFile})
	if err != nil {
		return err
	}
	defer svc.Stop()
	logf("nhisentry started (log %s)", svc.Log())
	// The series starts once the service answers, so its first rows are
	// not start-up.
	prev, err := svc.WaitFor(ctx, time.Now().Add(time.Minute), func(e2e.Scrape) bool { return true })
	if err != nil {
		return err
	}
	// Not closed: closing it would close the producer's client, which the
	// broker owns.
	adm := kadm.NewClient(b.Client)

	start := time.Now().Truncate(time.Second).Add(time.Second)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fed := make(chan error, 1)
	go func() { fed <- feed(fctx, b.Client, o.seed, o.rate, start, o.duration) }()

	fmt.Fprintf(stdout, "machine: %d cores (runtime.NumCPU), %s %s/%s; seed %d, %.0f records/s for %s, a row every %s\n\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, o.seed, o.rate, o.duration, o.interval)
	fmt.Fprintf(stdout, "%8s %10s %10s %8s %8s %9s %10s %8s %8s %8s\n",
		"elapsed", "produced", "consumed", "lag", "RSS MiB", "heap MiB", "goroutines", "findings", "p50", "p99")
	// Rows are taken at whole intervals after start, when the first
	// records are due.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(start)):
	}
	var rows []row
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for len(rows) == 0 || rows[len(rows)-1].elapsed < o.duration {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-svc.Exited():
			return svc.ExitErr()
		case err := <-fed:
			if err != nil {
				return fmt.Errorf("feed the broker: %w", err)
			}
			fed = nil // done producing; the rows go on to --duration
			continue
		case <-tick.C:
		}
		sc, err := svc.Read(ctx)
		if err != nil {
			return fmt.Errorf("read nhisentry's metrics (see %s): %w", svc.Log(), err)
		}
		r, err := measure(ctx, adm, prev, sc)
		if err != nil {
			return err
		}
		r.elapsed = sc.At.Sub(start).Round(time.Second)
		prev = sc
		rows = append(rows, r)
		fmt.Fprintf(stdout, "%8s %10d %10d %8d %8.1f %9.1f %10.0f %8.0f %8s %8s\n",
			r.elapsed, r.produced, r.consumed, r.lag, r.rss/(1<<20), r.heap/(1<<20), r.goroutines,
			r.findings, e2e.FormatSeconds(r.p50), e2e.FormatSeconds(r.p99))
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, verdict(rows, o.rate))
	return nil
}

// measure reads the offsets of the input topics and the service's group
// and takes the rest from a scrape; latency is over the findings delivered
// since prev.
func measure(ctx context.Context, adm *kadm.Client, prev, sc e2e.Scrape) (row, error) {
	var r row
	ends, err := adm.ListEndOffsets(ctx, e2e.InputTopics()...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return r, fmt.Errorf("list end offsets: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, e2e.GroupID)
	if err != nil {
		return r, fmt.Errorf("fetch offsets of group %s: %w", e2e.GroupID, err)
	}
	ends.Each(func(end kadm.ListedOffset) {
		r.produced += end.Offset
		// A partition the group has not committed on yet has consumed
		// nothing (At is -1 then).
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At > 0 {
			r.consumed += c.At
		}
	})
	r.lag = r.produced - r.consumed
	r.rss = e2e.Sum(sc.Samples, e2e.MetricRSS)
	r.heap = e2e.Sum(sc.Samples, e2e.MetricHeapInuse)
	r.goroutines = e2e.Sum(sc.Samples, e2e.MetricGoroutines)
	d := e2e.Delta(e2e.Buckets(sc.Samples, e2e.MetricLatency), e2e.Buckets(prev.Samples, e2e.MetricLatency))
	r.findings = d[math.Inf(1)]
	r.p50, r.p99 = e2e.Quantile(0.50, d), e2e.Quantile(0.99, d)
	return r, nil
}
