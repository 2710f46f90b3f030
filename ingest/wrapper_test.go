package ingest

import "testing"

func TestUnwrap(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain JSON stays", `{"start_time":"2024-01-01T00:00:00Z","method":"GET"}`, `{"start_time":"2024-01-01T00:00:00Z","method":"GET"}`},
		{"plain text stays", `[2019-04-08T16:50:12.533Z] "GET / HTTP/1.1" 200`, `[2019-04-08T16:50:12.533Z] "GET / HTTP/1.1" 200`},
		{"CRI full line", `2025-12-31T17:37:40.493035218+01:00 stdout F {"a":1}`, `{"a":1}`},
		{"CRI stderr partial", `2025-12-31T16:37:40Z stderr P half a line`, `half a line`},
		{"CRI-looking but no stream", `2025-12-31T16:37:40Z stdin F x`, `2025-12-31T16:37:40Z stdin F x`},
		{"docker json-file", `{"log":"ACCESS [2019] \"GET /\" 200\n","stream":"stdout","time":"2019-02-12T18:37:43Z"}`, "ACCESS [2019] \"GET /\" 200\n"},
		{"message with kubernetes metadata", `{"message":"ACCESS x","stream":"stdout","kubernetes":{"pod":{"name":"p"}}}`, `ACCESS x`},
		{"a record with its own message field stays", `{"message":"hello","level":"info"}`, `{"message":"hello","level":"info"}`},
		{"broken wrapper stays", `{"log":"x","stream":`, `{"log":"x","stream":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Unwrap([]byte(tt.in))); got != tt.want {
				t.Errorf("Unwrap = %q, want %q", got, tt.want)
			}
		})
	}
}
