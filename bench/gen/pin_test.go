package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestDefaultOutputPinned pins the output of runs that select no scenario
// beyond the original four: their records and labels were hashed before
// Config.Scenarios existed, and the later scenarios and Config.Platform must
// not change them.
func TestDefaultOutputPinned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		records int
		hash    string
		labels  string
	}{
		{"two days with attacks", with(small, func(c *Config) { c.Attacks, c.Malformed, c.Duration = true, 8, 2*24*time.Hour }),
			5877, "9313acb77112bd600d50449c4726df0f885e8b039feaa84fb2eb2639a2f56452", "3077c488c630b097b1c1480b841d2d882c4f2500ba080b8f664b595059716598"},
		{"week with attacks", with(small, func(c *Config) { c.Attacks, c.Malformed = true, 8 }),
			18035, "d0435f3f8a4e6e7d8320e62160a22cac9649b533d0070ab12be4f23cde2252c0", "0f1e2149b6c1c99b69661ddbdf7ab7fbec0da998f0aecd2312df7b51b60cf66a"},
		{"the four named", with(small, func(c *Config) { c.Scenarios, c.Malformed = Scenarios, 8 }),
			18035, "d0435f3f8a4e6e7d8320e62160a22cac9649b533d0070ab12be4f23cde2252c0", "0f1e2149b6c1c99b69661ddbdf7ab7fbec0da998f0aecd2312df7b51b60cf66a"},
		{"two days without attacks", with(small, func(c *Config) { c.Duration = 2 * 24 * time.Hour }),
			5733, "9eb15ec7213596af69b4387e7d8e39ae094e2e32aa81e078364d9af9d59dc75b", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		// The platform's logs and the lifecycle are opt-in; pinned on
		// their own so that a change to them is deliberate too.
		{"two days with attacks and the platform", with(small, func(c *Config) { c.Attacks, c.Malformed, c.Duration, c.Platform = true, 8, 2*24*time.Hour, true }),
			6594, "78d943e8505929b2c1383be7c5e149dbcc50910bc37e7d869550a84c3024a48d", "3077c488c630b097b1c1480b841d2d882c4f2500ba080b8f664b595059716598"},
		{"two days with attacks, the platform and the lifecycle", with(small, func(c *Config) {
			c.Attacks, c.Malformed, c.Duration, c.Platform, c.Lifecycle = true, 8, 2*24*time.Hour, true, true
		}),
			11168, "411ff7ef2949884ddc8312eee2024208842b35eba93406d1fd05630f8013187f", "3077c488c630b097b1c1480b841d2d882c4f2500ba080b8f664b595059716598"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := generate(t, tt.cfg)
			var buf bytes.Buffer
			if err := WriteLabels(&buf, run.labels); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(buf.Bytes())
			if got := hex.EncodeToString(sum[:]); got != tt.labels {
				t.Errorf("labels hash %s, want %s:\n%s", got, tt.labels, buf.Bytes())
			}
			if n := len(run.recs); run.hash != tt.hash || n != tt.records {
				t.Errorf("%d records hashing to %s, want %d records hashing to %s", n, run.hash, tt.records, tt.hash)
			}
		})
	}
}
