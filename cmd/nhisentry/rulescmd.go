package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nhisentry/nhisentry/detectors/rules"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
)

// embeddedPackName is how the embedded default pack is named in the output
// of `rules test|lint` run without paths.
const embeddedPackName = "embedded:default.yaml"

// rulesCmd runs `nhisentry rules test|lint [DIR|FILE...]` (SPEC §8,
// detection as code). Without paths both work on the default pack embedded
// in the binary: the copy a deployment runs when it configures no rules,
// and, under `go run`, the pack of the working tree, since the binary is
// built from it. A directory stands for the *.yaml and *.yml files directly
// inside it.
//
// test runs every rule's inline cases and prints one line per case,
// "FILE:LINE: RULE / CASE: PASS" or "…: FAIL: got X, want Y" (or "FAIL:
// error: …"), then "N rules, M cases: P passed, F failed"; it fails when a
// case fails or a file does not load (its errors are printed first).
//
// lint prints every load error, then for rules that load: comparisons of an
// enumerated variable with a value it never has, expressions that constant
// folding reduces to false or true, conflicting equalities, and rules
// without a case that expects a match; one "FILE:LINE:COL: rule ID:
// MESSAGE" line each, then "N rules in F files: P problems". It fails when
// it finds any.
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: nhisentry rules test [--quiet] [DIR|FILE...] | nhisentry rules lint [DIR|FILE...]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("rules: test or lint expected")
	}
	switch args[0] {
	case "test":
		return rulesTestCmd(args[1:], stdout, stderr)
	case "lint":
		return rulesLintCmd(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("rules: unknown subcommand %q", args[0])
}

func rulesTestCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("quiet", false, "print failing cases only, and the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		set *rules.Set
		err error
	)
	if fs.NArg() == 0 {
		set, err = rules.Options{}.LoadData(embeddedPackName, pack.Default)
	} else {
		set, err = rules.Load(fs.Args()...)
	}
	if err != nil {
		n := printErrors(stdout, err)
		return fmt.Errorf("rules test: %d %s loading the rules", n, plural(n, "error", "errors"))
	}
	results := rules.RunTests(set)
	failed := 0
	for _, r := range results {
		if !r.OK() {
			failed++
		}
		if !r.OK() || !*quiet {
			fmt.Fprintln(stdout, r)
		}
	}
	fmt.Fprintf(stdout, "%d %s, %d %s: %d passed, %d failed\n", set.Len(), plural(set.Len(), "rule", "rules"),
		len(results), plural(len(results), "case", "cases"), len(results)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("rules test: %d of %d %s failed", failed, len(results), plural(len(results), "case", "cases"))
	}
	return nil
}

func rulesLintCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		set      *rules.Set
		problems []*rules.Error
	)
	if fs.NArg() == 0 {
		set, problems = rules.Options{}.LintData(embeddedPackName, pack.Default)
	} else {
		set, problems = rules.Options{}.Lint(fs.Args()...)
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	n := len(problems)
	if set == nil {
		fmt.Fprintf(stdout, "the rules do not load: %d %s\n", n, plural(n, "problem", "problems"))
		return fmt.Errorf("rules lint: %d %s", n, plural(n, "problem", "problems"))
	}
	files := len(set.Files())
	fmt.Fprintf(stdout, "%d %s in %d %s: %d %s\n", set.Len(), plural(set.Len(), "rule", "rules"),
		files, plural(files, "file", "files"), n, plural(n, "problem", "problems"))
	if n > 0 {
		return fmt.Errorf("rules lint: %d %s", n, plural(n, "problem", "problems"))
	}
	return nil
}

// printErrors prints each of a joined error on its own line and returns how
// many there were.
func printErrors(w io.Writer, err error) int {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			fmt.Fprintln(w, e)
		}
		return len(joined.Unwrap())
	}
	fmt.Fprintln(w, err)
	return 1
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
