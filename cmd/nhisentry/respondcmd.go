package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/response"
)

const respondUsage = `usage:
  nhisentry respond list    --config FILE [--status S[,S…]] [--json]
  nhisentry respond show    --config FILE ID
  nhisentry respond approve --config FILE [--as NAME] ID
  nhisentry respond reject  --config FILE [--as NAME] [--reason TEXT] ID
  nhisentry respond undo    --config FILE [--as NAME] ID
  nhisentry respond reset   --config FILE [--as NAME]    close the circuit breaker
`

// respondCmd runs `nhisentry respond …`: people's side of the guarded
// responses, on the audit trail in ClickHouse.
func respondCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, respondUsage)
		return errors.New("respond: list, show, approve, reject, undo or reset")
	}
	sub := args[0]
	fs := flag.NewFlagSet("respond "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML): the clickhouse, kafka and respond sections are used")
	as := fs.String("as", defaultActor(), "who approves, rejects, undoes or resets (recorded in the audit trail)")
	status := fs.String("status", "", "list: only these statuses, comma-separated (pending_approval, succeeded, …)")
	asJSON := fs.Bool("json", false, "list: one JSON record per line")
	reason := fs.String("reason", "", "reject: why")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	wantID := map[string]bool{"show": true, "approve": true, "reject": true, "undo": true}
	switch {
	case sub != "list" && sub != "reset" && !wantID[sub]:
		fmt.Fprint(stderr, respondUsage)
		return fmt.Errorf("respond: unknown subcommand %q", sub)
	case wantID[sub] && fs.NArg() != 1:
		return fmt.Errorf("respond %s: one action id is required", sub)
	case !wantID[sub] && fs.NArg() != 0:
		return fmt.Errorf("respond %s: unexpected arguments %v", sub, fs.Args())
	case *path == "":
		return fmt.Errorf("respond %s: --config FILE is required", sub)
	}
	cfg, errs := readConfig(*path)
	errs = append(errs, cfg.Respond.validate()...)
	if err := configErrors(*path, errs); err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	store, err := chstore.Open(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	r, closeSinks, err := newResponder(ctx, cfg, store, nil, log)
	if err != nil {
		return err
	}
	defer closeSinks()
	id := fs.Arg(0)
	var rec response.Record
	switch sub {
	case "list":
		var statuses []response.Status
		for _, s := range strings.Split(*status, ",") {
			if s = strings.TrimSpace(s); s != "" {
				statuses = append(statuses, response.Status(s))
			}
		}
		recs, err := r.List(ctx, statuses...)
		if err != nil {
			return err
		}
		if open, why := r.Breaker(); open {
			fmt.Fprintf(stderr, "circuit breaker OPEN: %s (nhisentry respond reset closes it)\n", why)
		}
		return printRecords(stdout, recs, *asJSON)
	case "show":
		recs, err := store.LoadAudit(ctx, response.AuditQuery{IDs: []string{id}})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return fmt.Errorf("respond show: no action %q", id)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(recs[0])
	case "approve":
		rec, err = r.Approve(ctx, id, *as)
	case "reject":
		rec, err = r.Reject(ctx, id, *as, *reason)
	case "undo":
		rec, err = r.Undo(ctx, id, *as)
	case "reset":
		if err := r.Reset(ctx, *as); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "circuit breaker reset by %s\n", *as)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %s via %s on %s — %s\n", rec.ID, rec.Status, rec.Action, rec.Provider, rec.IdentityID, rec.Detail)
	if rec.Status == response.StatusFailed || rec.Status == response.StatusQueued {
		return fmt.Errorf("respond %s %s: the provider call did not succeed (%s)", sub, id, rec.Status)
	}
	return nil
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if h, err := os.Hostname(); err == nil {
		return "someone@" + h
	}
	return "someone"
}

// printRecords prints actions as a table, or as JSON lines.
func printRecords(w io.Writer, recs []response.Record, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for i := range recs {
			if err := enc.Encode(&recs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tACTION\tPROVIDER\tIDENTITY\tMODE\tBLAST\tDECISION")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Status, r.Action, r.Provider, r.IdentityID, r.Mode, r.BlastRadius, r.Decision)
	}
	return tw.Flush()
}
