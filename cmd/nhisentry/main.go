// Command nhisentry is the behavioral analytics stream processor for
// non-human identity telemetry. This package only wires the others together:
// it reads the configuration, builds the pipeline and runs a subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/schemas/migrations"
)

const usage = `nhisentry — behavioral analytics for non-human identities

Usage:
  nhisentry run --config FILE          consume Kafka, store in ClickHouse, detect, publish findings
  nhisentry migrate [--config FILE] [--cluster NAME] [--print-sql]
                                       create or upgrade the ClickHouse schema (on every
                                       server of a cluster: docs/cluster.md)
  nhisentry demo [--identities N] [--days N]
                                       the whole pipeline on this machine with an in-process
                                       Kafka-protocol broker, generated telemetry and attacks
  nhisentry decode [--format F] [--dead-letters FILE] FILE...|-
                                       print normalized events as NDJSON (plain, gzip,
                                       {"Records":[…]}, pretty JSON); a summary on stderr
  nhisentry scan [--config FILE] [--format F] [--state FILE] [--dead-letters FILE] FILE...|-
                                       detect offline over files (plain, gzip, mixed formats) with
                                       the embedded store; findings as NDJSON, a summary on stderr
  nhisentry baseline rebuild [--config FILE | --state FILE] [--full]
                                       roll up stored events and rebuild the baselines of the
                                       identities with new events (--full: every identity)
  nhisentry baseline show [--config FILE | --state FILE] [--json] IDENTITY
                                       print one identity's stored baseline
  nhisentry rules test [--quiet] [DIR|FILE...]
                                       run the rules' inline test cases (default: the embedded pack)
  nhisentry rules lint [DIR|FILE...]   report load errors and rules that can never match
  nhisentry respond list|show|approve|reject|undo|reset --config FILE [ID]
                                       the guarded responses: list planned and pending actions,
                                       approve or reject one, undo an isolation, reset the breaker
  nhisentry version

Environment overrides: NHI_KAFKA_BROKERS, NHI_KAFKA_GROUP_ID, NHI_CLICKHOUSE_ADDR,
NHI_CLICKHOUSE_DATABASE, NHI_CLICKHOUSE_USERNAME, NHI_CLICKHOUSE_PASSWORD(_FILE),
NHI_KAFKA_SASL_MECHANISM, NHI_KAFKA_SASL_USERNAME, NHI_KAFKA_SASL_PASSWORD(_FILE),
NHI_HTTP_LISTEN, NHI_LOG_LEVEL.
`

var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "nhisentry: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "scan":
		return scanCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "baseline":
		return baselineCmd(ctx, args[1:], stdout, stderr)
	case "decode":
		return decodeCmd(args[1:], os.Stdin, stdout, stderr)
	case "rules":
		return rulesCmd(args[1:], stdout, stderr)
	case "respond":
		return respondCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "nhisentry", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.Level) // validated with the configuration
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("run: --config FILE is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	svc := newIdleService(cfg, log)
	addr, err := svc.serveHTTP(ctx, cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	if err := svc.start(ctx); err != nil {
		return err
	}
	defer svc.close()
	go reloadRulesOnHUP(ctx, svc)
	log.Info("nhisentry running", "http", addr, "inputs", len(cfg.Kafka.Inputs), "clickhouse", cfg.ClickHouse.Addr)
	st, err := svc.run(ctx, nil)
	log.Info("nhisentry stopped", "records", st.Records, "events", st.Events, "dead_letters", st.DeadLetters, "batches", st.Batches)
	return err
}

// reloadRulesOnHUP reloads the rule files on SIGHUP; a broken file keeps the
// rules that worked and the errors are logged.
func reloadRulesOnHUP(ctx context.Context, svc *service) {
	if svc.rules == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := svc.rules.Reload(); err != nil {
				svc.log.Error("rule reload failed; previous rules stay in force", "err", err)
				continue
			}
			svc.log.Info("rules reloaded")
		}
	}
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); only the clickhouse section is used")
	printSQL := fs.Bool("print-sql", false, "print the DDL instead of applying it (needs no server)")
	cluster := fs.String("cluster", "", "ClickHouse cluster (remote_servers) to create the Replicated and Distributed tables on; default clickhouse.cluster")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, errs := readConfig(*path)
	if *cluster != "" {
		cfg.ClickHouse.Cluster = *cluster
	}
	if cfg.ClickHouse.Database == "" {
		errs = append(errs, errors.New("clickhouse.database: required"))
	}
	if err := configErrors(*path, errs); err != nil {
		return err
	}
	if *printSQL {
		return migrations.PrintSQL(stdout, migrations.Target{DB: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster})
	}
	log := newLogger(cfg.Log, stderr)
	store, err := chstore.Open(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	where := "database " + cfg.ClickHouse.Database
	if cfg.ClickHouse.Cluster != "" {
		where += " on cluster " + cfg.ClickHouse.Cluster
	}
	fmt.Fprintf(stdout, "%s: %d migration(s) applied, schema up to date\n", where, len(applied))
	return nil
}
