package meshgraph

import "testing"

func TestStateStaysBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxState = 100
	d := New(cfg)
	for i := range 10_000 {
		d.state.Put(key(keyDomain, "id", "td", int64(i)), memo{})
	}
	if d.state.Len() != 100 {
		t.Fatalf("state holds %d keys, limit 100", d.state.Len())
	}
	for i := range 10_000 {
		d.served.Put(key(keyServed, "peer", "route", int64(i)), callers{})
	}
	if d.served.Len() != 100 {
		t.Fatalf("served routes hold %d keys, limit 100", d.served.Len())
	}
}
