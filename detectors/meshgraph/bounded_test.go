package meshgraph

import "testing"

func TestBoundedEvictsOldest(t *testing.T) {
	b := bounded[memo]{limit: 3}
	for k := uint64(1); k <= 3; k++ {
		b.put(k, memo{n: int32(k)})
	}
	b.put(2, memo{n: 20}) // an update keeps its place
	b.put(4, memo{})      // evicts 1, the first inserted
	if _, ok := b.get(1); ok || b.len() != 3 {
		t.Fatalf("oldest key kept or size %d", b.len())
	}
	if v, ok := b.get(2); !ok || v.n != 20 {
		t.Fatalf("updated key: %+v %v", v, ok)
	}
	b.put(5, memo{}) // evicts 2
	b.put(6, memo{}) // evicts 3
	for k, want := range map[uint64]bool{2: false, 3: false, 4: true, 5: true, 6: true} {
		if _, ok := b.get(k); ok != want {
			t.Errorf("key %d present %v, want %v", k, ok, want)
		}
	}
}

func TestStateStaysBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxState = 100
	d := New(cfg)
	for i := range 10_000 {
		d.state.put(key(keyDomain, "id", "td", int64(i)), memo{})
	}
	if d.state.len() != 100 || len(d.state.ring) != 100 {
		t.Fatalf("state holds %d keys (ring %d), limit 100", d.state.len(), len(d.state.ring))
	}
}
