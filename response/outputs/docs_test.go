package outputs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// wireLine matches the lines of a document that show bytes on the wire: a
// syslog message (with or without its octet count) or a JSON body.
var wireLine = regexp.MustCompile(`^(\d+ )?<\d+>1 |^\{"`)

// template matches a line that describes a shape rather than showing bytes:
// it elides (…) or has placeholders (<title>).
var template = regexp.MustCompile(`…|<[A-Za-z]`)

// TestDocsShowTheGoldens keeps docs/outputs/*.md byte-exact: every wire
// line a document shows in a code block is part of a golden the tests
// compare the outputs' bytes with (tabs are shown as ⇥ in the documents).
func TestDocsShowTheGoldens(t *testing.T) {
	for dir, doc := range map[string]string{"syslog": "syslog.md", "splunk": "splunk.md", "webhook": "webhooks.md"} {
		t.Run(doc, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join("..", "..", "docs", "outputs", doc))
			if err != nil {
				t.Fatal(err)
			}
			goldens, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
			if err != nil || len(goldens) == 0 {
				t.Fatalf("no goldens (%v)", err)
			}
			var all strings.Builder
			for _, g := range goldens {
				b, err := os.ReadFile(g)
				if err != nil {
					t.Fatal(err)
				}
				all.Write(b)
			}
			wire := all.String()
			shown, inBlock := 0, false
			for i, line := range strings.Split(string(text), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "```") {
					inBlock = !inBlock
					continue
				}
				if !inBlock || !wireLine.MatchString(line) || template.MatchString(line) {
					continue
				}
				shown++
				if !strings.Contains(wire, strings.ReplaceAll(line, "⇥", "\t")) {
					t.Errorf("%s:%d shows wire bytes no golden holds:\n%s", doc, i+1, line)
				}
			}
			if shown == 0 {
				t.Errorf("%s shows no example of its wire form", doc)
			}
		})
	}
}
