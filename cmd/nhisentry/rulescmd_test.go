package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateRulesGolden = flag.Bool("update-rules-golden", false, "rewrite testdata/rules/*.golden from the rules commands' output")

// TestRulesCommands runs `nhisentry rules test|lint` on the files under
// testdata/rules and compares the output with the golden files beside them;
// the exit status is an error exactly when a case fails, a file does not
// load or lint finds something.
func TestRulesCommands(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"test_good", []string{"rules", "test", "testdata/rules/good.yaml"}, ""},
		{"test_quiet", []string{"rules", "test", "--quiet", "testdata/rules/good.yaml"}, ""},
		{"test_failing", []string{"rules", "test", "testdata/rules/good.yaml", "testdata/rules/failing.yaml"}, "rules test: 1 of 6 cases failed"},
		{"test_broken", []string{"rules", "test", "testdata/rules/broken.yaml", "testdata/rules/good.yaml"}, "rules test: 2 errors loading the rules"},
		{"lint_good", []string{"rules", "lint", "testdata/rules/good.yaml"}, ""},
		{"lint_problems", []string{"rules", "lint", "testdata/rules/lint.yaml", "testdata/rules/good.yaml"}, "rules lint: 3 problems"},
		{"lint_broken", []string{"rules", "lint", "testdata/rules/broken.yaml"}, "rules lint: 2 problems"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(tt.args, &out, &errOut)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none\n%s", err, out.String())
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			golden := filepath.Join("testdata", "rules", tt.name+".golden")
			if *updateRulesGolden {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-rules-golden to create it)", err)
			}
			if out.String() != string(want) {
				t.Errorf("output differs from %s:\n got:\n%s\nwant:\n%s", golden, out.String(), want)
			}
		})
	}
}

// TestRulesCommandsOnTheEmbeddedPack: without paths both commands check the
// pack built into the binary, which must be all green.
func TestRulesCommandsOnTheEmbeddedPack(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"rules", "test"}, &out, &out); err != nil {
		t.Fatalf("rules test: %v\n%s", err, out.String())
	}
	summary := regexp.MustCompile(`(?m)^(\d+) rules, (\d+) cases: (\d+) passed, 0 failed$`).FindStringSubmatch(out.String())
	if summary == nil || !strings.Contains(out.String(), "embedded:default.yaml:") {
		t.Fatalf("rules test output lacks the embedded pack's cases and summary:\n%s", out.String())
	}
	if n, _ := strconv.Atoi(summary[1]); n < 20 {
		t.Errorf("the pack has %d rules, want at least 20", n)
	}
	out.Reset()
	if err := run([]string{"rules", "lint"}, &out, &out); err != nil {
		t.Fatalf("rules lint: %v\n%s", err, out.String())
	}
	if !regexp.MustCompile(`^\d+ rules in 1 file: 0 problems\n$`).MatchString(out.String()) {
		t.Errorf("rules lint output %q", out.String())
	}
}

func TestRulesUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"rules"}, {"rules", "frob"}, {"rules", "test", "--nope"}, {"rules", "test", "testdata/rules/missing.yaml"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
