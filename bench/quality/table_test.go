package quality

import (
	"strings"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	scen := func(detected int, ttd time.Duration) []ScenarioResult {
		return []ScenarioResult{
			{Scenario: "stolen", Labels: 1, Detected: detected, TimeToDetect: ttd},
			{Scenario: "probing", Labels: 2, Detected: 2, TimeToDetect: 90*time.Second + 400*time.Millisecond},
		}
	}
	var b strings.Builder
	err := WriteTable(&b, []Method{
		{Name: "ours", Report: Report{Scenarios: scen(1, 0), Findings: 10, TruePositives: 4, IdentityDays: 2000}},
		{Name: "naive", Report: Report{Scenarios: scen(0, 0), Findings: 50, TruePositives: 5, IdentityDays: 2000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `| scenario (detected/labels, time to detect) | ours | naive |
|---|---:|---:|
| ` + "`stolen`" + ` | 1/1, 0s | 0/1, — |
| ` + "`probing`" + ` | 2/2, 1m30s | 2/2, 1m30s |
| recall | 3/3 | 2/3 |
| findings | 10 | 50 |
| true-positive findings | 4 | 5 |
| precision | 0.400 | 0.100 |
| false findings | 6 | 45 |
| false findings per 1,000 identity-days | 3.0 | 22.5 |
`
	if b.String() != want {
		t.Errorf("table\n%s\nwant\n%s", b.String(), want)
	}
}
