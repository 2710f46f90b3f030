package rules

import (
	"testing"

	"github.com/nhisentry/nhisentry/detectors/rules/pack"
)

// TestPackLint keeps the shipped pack free of lint problems and large
// enough: at least 20 rules.
func TestPackLint(t *testing.T) {
	s, problems := Options{}.LintData("pack/default.yaml", pack.Default)
	for _, p := range problems {
		t.Error(p)
	}
	if s != nil && s.Len() < 20 {
		t.Errorf("the pack has %d rules, want at least 20", s.Len())
	}
}
