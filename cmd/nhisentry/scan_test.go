package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/schemas"
)

// writeGenerated writes a generated run as one file per format, the
// CloudTrail one gzipped, and returns the paths and the attack labels.
func writeGenerated(t *testing.T, cfg gen.Config) ([]string, []gen.Label) {
	t.Helper()
	dir := t.TempDir()
	bufs := map[string]*bytes.Buffer{}
	labels, err := gen.Generate(cfg, func(r gen.Record) error {
		if bufs[r.Format] == nil {
			bufs[r.Format] = &bytes.Buffer{}
		}
		bufs[r.Format].Write(r.Value)
		bufs[r.Format].WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for format, b := range bufs {
		p := filepath.Join(dir, format+".log")
		data := b.Bytes()
		if format == gen.FormatCloudTrail {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(data)
			zw.Close()
			p, data = p+".gz", z.Bytes()
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths, labels
}

func scanFindings(t *testing.T, args ...string) ([]schemas.Finding, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(append([]string{"scan"}, args...), &out, &errOut); err != nil {
		t.Fatalf("scan: %v\n%s", err, errOut.String())
	}
	var fs []schemas.Finding
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var f schemas.Finding
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("finding is not JSON: %v: %s", err, sc.Text())
		}
		fs = append(fs, f)
	}
	return fs, errOut.String()
}

// TestScanKeepsBaselinesInItsState scans generated files of mixed formats
// with the embedded store, then scans them again from the saved state:
// everything learned the first time is known the second time.
func TestScanKeepsBaselinesInItsState(t *testing.T) {
	paths, labels := writeGenerated(t, gen.Config{
		Seed: 3, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Duration: 4 * 24 * time.Hour,
		Workloads: 16, Roles: 8, APIKeys: 8, VaultClients: 6, Attacks: true,
	})
	state := filepath.Join(t.TempDir(), "state.nhi")
	first, summary := scanFindings(t, append([]string{"--state", state}, paths...)...)
	if !strings.Contains(summary, "baselines built") || len(first) == 0 {
		t.Fatalf("first scan: %d findings\n%s", len(first), summary)
	}
	attacked := map[string]bool{}
	for _, l := range labels {
		attacked[l.Identity] = true
	}
	found := 0
	for _, f := range first {
		if attacked[f.Identity.ID] {
			found++
		}
	}
	if found == 0 {
		t.Errorf("no finding names an attacked identity")
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state written: %v", err)
	}

	// The stored baseline of an attacked identity reads back for a person.
	var out, errOut bytes.Buffer
	if err := run([]string{"baseline", "show", "--state", state, labels[0].Identity}, &out, &errOut); err != nil {
		t.Fatalf("baseline show: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{labels[0].Identity, "class", "rate", "known action"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("baseline show lacks %q:\n%s", want, out.String())
		}
	}

	// Scanning the same files again from the state: no value is new.
	second, summary := scanFindings(t, append([]string{"--state", state}, paths...)...)
	for _, f := range second {
		if f.Detector == "new_value" {
			t.Errorf("second scan reports a known value as new: %s", f.Explanation)
		}
	}
	t.Logf("first scan %d findings, second %d\n%s", len(first), len(second), summary)
}

// TestScanFindsEveryAttackInTheDemoWeek scans the demo's generated week
// (every format, the default population, the injected attacks) and requires
// a finding on every attacked identity during its attack, with an
// explanation; it reports the findings per detector and how many fall
// outside the attacks, per 1,000 identity-days.
func TestScanFindsEveryAttackInTheDemoWeek(t *testing.T) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	paths, labels := writeGenerated(t, gen.Config{Seed: 1, Start: start, Duration: 7 * 24 * time.Hour, Attacks: true})
	findings, summary := scanFindings(t, paths...)
	identities := map[string]bool{}
	perDetector := map[string]int{}
	matched := map[string]bool{}
	for _, l := range labels {
		var hits []string
		for _, f := range findings {
			if f.Identity.ID == l.Identity && !f.FirstSeen.Before(l.Start) && !f.FirstSeen.After(l.End.Add(time.Hour)) {
				matched[f.ID] = true
				hits = append(hits, f.Detector+"/"+f.RuleID+": "+f.Explanation)
			}
		}
		if len(hits) == 0 {
			t.Errorf("attack %s on %s (%s) not found", l.Scenario, l.Identity, l.Detail)
			continue
		}
		t.Logf("%s on %s found by %d findings, e.g. %s", l.Scenario, l.Identity, len(hits), hits[0])
	}
	outside := 0
	for _, f := range findings {
		identities[f.Identity.ID] = true
		perDetector[f.Detector+"/"+f.RuleID]++
		if f.Explanation == "" {
			t.Errorf("finding %s of %s has no explanation", f.ID, f.Detector)
		}
		if !matched[f.ID] {
			outside++
		}
	}
	t.Logf("findings per detector: %v; outside the attacks: %d\n%s", perDetector, outside, summary)
}
