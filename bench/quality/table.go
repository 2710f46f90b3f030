package quality

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Method is one column of the side-by-side table.
type Method struct {
	Name   string
	Report Report
}

// WriteTable prints the methods' reports side by side as a Markdown table:
// a row per scenario (labels detected, median time to detect), then recall,
// findings, precision and false findings. Scenarios are taken from the first
// method; every method is scored against the same labels.
func WriteTable(w io.Writer, methods []Method) error {
	var b strings.Builder
	row := func(name string, cell func(Report) string) {
		b.WriteString("| " + name)
		for _, m := range methods {
			b.WriteString(" | " + cell(m.Report))
		}
		b.WriteString(" |\n")
	}
	b.WriteString("| scenario (detected/labels, time to detect)")
	for _, m := range methods {
		b.WriteString(" | " + m.Name)
	}
	b.WriteString(" |\n|---" + strings.Repeat("|---:", len(methods)) + "|\n")
	if len(methods) > 0 {
		for i, s := range methods[0].Report.Scenarios {
			row("`"+s.Scenario+"`", func(r Report) string { return scenarioCell(r.Scenarios[i]) })
		}
	}
	row("recall", func(r Report) string {
		d, n := r.Recall()
		return fmt.Sprintf("%d/%d", d, n)
	})
	row("findings", func(r Report) string { return fmt.Sprint(r.Findings) })
	row("true-positive findings", func(r Report) string { return fmt.Sprint(r.TruePositives) })
	row("precision", func(r Report) string { return fmt.Sprintf("%.3f", r.Precision()) })
	row("false findings", func(r Report) string { return fmt.Sprint(r.FalseFindings()) })
	row("false findings per 1,000 identity-days", func(r Report) string {
		return fmt.Sprintf("%.1f", r.FalsePer1000IdentityDays())
	})
	_, err := io.WriteString(w, b.String())
	return err
}

func scenarioCell(s ScenarioResult) string {
	if s.Detected == 0 {
		return fmt.Sprintf("0/%d, —", s.Labels)
	}
	return fmt.Sprintf("%d/%d, %v", s.Detected, s.Labels, s.TimeToDetect.Round(time.Second))
}
