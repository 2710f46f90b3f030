package migrations_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/schemas/migrations"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestPrintSQLGolden pins the DDL for one server and for a cluster, which
// is derived from the same files (ForCluster).
func TestPrintSQLGolden(t *testing.T) {
	tests := []struct {
		target migrations.Target
		golden string
	}{
		{migrations.Target{DB: "nhisentry"}, "testdata/schema.golden.sql"},
		{migrations.Target{DB: "nhisentry", Cluster: "prod"}, "testdata/cluster.golden.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := migrations.PrintSQL(&b, tt.target); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tt.golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("PrintSQL differs from %s (run go test -update after reviewing):\n%s", tt.golden, b.String())
			}
		})
	}
}

func TestAll(t *testing.T) {
	tests := []struct {
		db      string
		wantErr string
	}{
		{db: "nhisentry"},
		{db: "x; DROP TABLE y", wantErr: "want letters, digits and underscores"},
		{db: "", wantErr: "want letters"},
	}
	for _, tt := range tests {
		all, err := migrations.All(tt.db)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("All(%q) = %v, want error %q", tt.db, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range all {
			if m.Version != i+1 || len(m.Statements) == 0 {
				t.Errorf("migration %d: version %d with %d statements", i, m.Version, len(m.Statements))
			}
			for _, s := range m.Statements {
				if strings.Contains(s, "{{db}}") || strings.HasSuffix(s, ";") {
					t.Errorf("statement not rendered: %s", s)
				}
			}
		}
	}
}
