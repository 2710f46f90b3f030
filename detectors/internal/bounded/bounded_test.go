package bounded

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// keys lists l's keys from the least to the most recently used, checking
// that every value is still its key's (values are set to the key on add).
func (l *LRU[K, V]) keys(t *testing.T) []K {
	t.Helper()
	var ks []K
	for k, v := range l.All() {
		if any(*v) != any(k) {
			t.Fatalf("key %v holds %v", k, *v)
		}
		ks = append(ks, k)
	}
	if len(ks) != l.Len() {
		t.Fatalf("the list holds %d keys, the index %d", len(ks), l.Len())
	}
	return ks
}

func TestLRU(t *testing.T) {
	for _, c := range []struct {
		name     string
		capacity int
		ops      string // add k, get k, peek k, remove k, evict; a key ending in ? must be absent
		want     []string
		evicted  []string
	}{
		{"empty", 3, "", nil, nil},
		{"adds in order", 3, "add a, add b, add c", []string{"a", "b", "c"}, nil},
		{"get makes most recent", 3, "add a, add b, add c, get a", []string{"b", "c", "a"}, nil},
		{"get of the newest", 3, "add a, add b, get b", []string{"a", "b"}, nil},
		{"peek keeps the place", 3, "add a, add b, add c, peek a", []string{"a", "b", "c"}, nil},
		{"miss changes nothing", 3, "add a, add b, get z?, peek z?", []string{"a", "b"}, nil},
		{"full: least recently used goes", 3, "add a, add b, add c, get a, add d", []string{"c", "a", "d"}, []string{"b"}},
		{"full: peeked key still goes", 3, "add a, add b, add c, peek a, add d", []string{"b", "c", "d"}, []string{"a"}},
		{"full again and again", 2, "add a, add b, add c, add d, get c, add e", []string{"c", "e"}, []string{"a", "b", "d"}},
		{"remove is no eviction", 3, "add a, add b, add c, remove b, remove z?, add d", []string{"a", "c", "d"}, nil},
		{"remove the newest and the oldest", 3, "add a, add b, add c, remove c, remove a", []string{"b"}, nil},
		{"evict oldest", 3, "add a, add b, get a, evict", []string{"a"}, []string{"b"}},
		{"evict until empty", 3, "add a, add b, evict, evict, evict", nil, []string{"a", "b"}},
		{"refill after emptying", 2, "add a, evict, add b, add c, add d", []string{"c", "d"}, []string{"a", "b"}},
		{"capacity below 1 is 1", 0, "add a, add b", []string{"b"}, []string{"a"}},
		{"capacity 1 get", 1, "add a, get a, peek a", []string{"a"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var evicted []string
			l := NewLRU(c.capacity, func(k string, v *string) {
				if *v != k {
					t.Fatalf("onEvict(%s) sees value %q", k, *v)
				}
				evicted = append(evicted, k)
			})
			for op := range strings.SplitSeq(c.ops, ", ") {
				if op == "" {
					continue
				}
				verb, k, _ := strings.Cut(op, " ")
				k, absent := strings.CutSuffix(k, "?")
				var v *string
				var ok bool
				switch verb {
				case "add":
					*l.Add(k) = k
				case "get", "peek":
					if verb == "get" {
						v, ok = l.Get(k)
					} else {
						v, ok = l.Peek(k)
					}
					if ok == absent || (ok && *v != k) {
						t.Fatalf("%s: %v %v", op, v, ok)
					}
				case "remove":
					l.Remove(k)
				case "evict":
					l.EvictOldest()
				default:
					t.Fatalf("op %q", op)
				}
				if l.Len() > l.Cap() {
					t.Fatalf("after %s: %d keys, capacity %d", op, l.Len(), l.Cap())
				}
			}
			if got := l.keys(t); !slices.Equal(got, c.want) {
				t.Errorf("keys %v, want %v", got, c.want)
			}
			if !slices.Equal(evicted, c.evicted) {
				t.Errorf("evicted %v, want %v", evicted, c.evicted)
			}
			k, v, ok := l.Oldest()
			if want := len(c.want) > 0; ok != want || (ok && (k != c.want[0] || *v != k)) {
				t.Errorf("oldest %q %v %v, want %v", k, v, ok, c.want)
			}
			if l.Len() == 0 && (l.head != -1 || l.tail != -1) {
				t.Errorf("empty list has head %d tail %d", l.head, l.tail)
			}
			if len(l.nodes) > l.Cap() {
				t.Errorf("%d slots for capacity %d: freed slots are not reused", len(l.nodes), l.Cap())
			}
		})
	}
}

func TestLRUReleasesEvicted(t *testing.T) {
	l := NewLRU[string, []byte](2, nil)
	*l.Add("a") = make([]byte, 8)
	l.Add("b")
	l.Add("c") // evicts a
	l.Remove("b")
	for i, n := range l.nodes {
		if _, held := l.index[n.key]; !held && (n.key != "" || n.val != nil) {
			t.Errorf("freed slot %d still holds %q and %d bytes", i, n.key, len(n.val))
		}
	}
}

func TestFIFO(t *testing.T) {
	for _, c := range []struct {
		name     string
		capacity int
		ops      string // put k=v, get k=v, get k? (absent)
		want     map[string]int
	}{
		{"empty", 3, "", map[string]int{}},
		{"below capacity", 3, "put a=1, put b=2", map[string]int{"a": 1, "b": 2}},
		{"first inserted goes", 3, "put a=1, put b=2, put c=3, put d=4", map[string]int{"b": 2, "c": 3, "d": 4}},
		{"get does not keep a key", 2, "put a=1, put b=2, get a=1, put c=3, get a?", map[string]int{"b": 2, "c": 3}},
		{"update keeps its place", 3, "put a=1, put b=2, put c=3, put b=20, put d=4, get b=20, put e=5, get b?",
			map[string]int{"c": 3, "d": 4, "e": 5}},
		{"round the ring twice", 2, "put a=1, put b=2, put c=3, put d=4, put e=5, put f=6, put e=50", map[string]int{"e": 50, "f": 6}},
		{"capacity below 1 is 1", -5, "put a=1, put b=2", map[string]int{"b": 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewFIFO[string, int](c.capacity)
			for op := range strings.SplitSeq(c.ops, ", ") {
				if op == "" {
					continue
				}
				verb, kv, _ := strings.Cut(op, " ")
				var k string
				var v int
				absent := strings.HasSuffix(kv, "?")
				if absent {
					k = strings.TrimSuffix(kv, "?")
				} else if _, err := fmt.Sscanf(strings.Replace(kv, "=", " ", 1), "%s %d", &k, &v); err != nil {
					t.Fatalf("op %q: %v", op, err)
				}
				switch verb {
				case "put":
					f.Put(k, v)
				case "get":
					if got, ok := f.Get(k); ok == absent || got != v {
						t.Fatalf("%s: %d %v", op, got, ok)
					}
				default:
					t.Fatalf("op %q", op)
				}
				if f.Len() > f.Cap() || len(f.ring) > f.Cap() {
					t.Fatalf("after %s: %d keys, ring %d, capacity %d", op, f.Len(), len(f.ring), f.Cap())
				}
			}
			if f.Len() != len(c.want) {
				t.Errorf("%d keys, want %v", f.Len(), c.want)
			}
			for k, want := range c.want {
				if v, ok := f.Get(k); !ok || v != want {
					t.Errorf("%s: %d %v, want %d", k, v, ok, want)
				}
			}
		})
	}
}

func TestFIFOStaysBounded(t *testing.T) {
	f := NewFIFO[uint64, struct{}](100)
	for k := range uint64(10_000) {
		f.Put(k, struct{}{})
	}
	if f.Len() != 100 || len(f.ring) != 100 {
		t.Fatalf("holds %d keys (ring %d), capacity 100", f.Len(), len(f.ring))
	}
	for k := uint64(9_900); k < 10_000; k++ {
		if _, ok := f.Get(k); !ok {
			t.Fatalf("newest key %d forgotten", k)
		}
	}
}

func TestNoAllocationOnHit(t *testing.T) {
	l := NewLRU[string, int](16, nil)
	f := NewFIFO[uint64, int](16)
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprint("credential-", i)
		*l.Add(keys[i]) = i
		f.Put(uint64(i), i)
	}
	i := 0
	for name, hit := range map[string]func(){
		"LRU.Get":    func() { *must(l.Get(keys[i%16])) += 1 },
		"LRU.Peek":   func() { *must(l.Peek(keys[i%16])) += 1 },
		"FIFO.Get":   func() { _, _ = f.Get(uint64(i % 16)) },
		"FIFO.Put":   func() { f.Put(uint64(i%16), i) },
		"LRU.Oldest": func() { _, _, _ = l.Oldest() },
	} {
		if n := testing.AllocsPerRun(1000, func() { hit(); i++ }); n != 0 {
			t.Errorf("%s allocates %v times a call", name, n)
		}
	}
}

func must[V any](v *V, ok bool) *V {
	if !ok {
		panic("miss")
	}
	return v
}

// The benchmarks run on a full LRU or FIFO of 100,000 keys, the detectors'
// default bound, visiting keys with a stride so that lookups miss the cache
// as a stream of credentials would. The op of a case gets the iteration.

func BenchmarkLRU(b *testing.B) {
	const n = 100_000
	keys := make([]string, 2*n) // the first n are held, the rest absent
	for i := range keys {
		keys[i] = fmt.Sprint("ASIAEXAMPLE", i)
	}
	for _, c := range []struct {
		name string
		op   func(l *LRU[string, [4]int64], i int)
	}{
		{"get_hit", func(l *LRU[string, [4]int64], i int) { must(l.Get(keys[i*7919%n]))[1]++ }},
		{"peek_hit", func(l *LRU[string, [4]int64], i int) { must(l.Peek(keys[i*7919%n]))[1]++ }},
		{"get_miss", func(l *LRU[string, [4]int64], i int) { l.Get(keys[n+i*7919%n]) }},
		// Steady state: every add evicts the oldest key; keys n… are absent,
		// and by the time the index wraps round, keys …n-1 have been evicted.
		{"add_evict", func(l *LRU[string, [4]int64], i int) { l.Add(keys[(n+i)%(2*n)])[0] = 1 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := NewLRU[string, [4]int64](n, nil)
			for _, k := range keys[:n] {
				l.Add(k)[0] = 1
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c.op(l, i)
			}
		})
	}
}

func BenchmarkFIFO(b *testing.B) {
	const n = 100_000
	for _, c := range []struct {
		name string
		op   func(f *FIFO[uint64, [2]int64], i uint64)
	}{
		{"get_hit", func(f *FIFO[uint64, [2]int64], i uint64) { f.Get(i * 7919 % n) }},
		{"put_update", func(f *FIFO[uint64, [2]int64], i uint64) { f.Put(i*7919%n, [2]int64{int64(i)}) }},
		{"put_evict", func(f *FIFO[uint64, [2]int64], i uint64) { f.Put(n+i, [2]int64{1}) }}, // every new key evicts the oldest
	} {
		b.Run(c.name, func(b *testing.B) {
			f := NewFIFO[uint64, [2]int64](n)
			for k := range uint64(n) {
				f.Put(k, [2]int64{1})
			}
			b.ReportAllocs()
			for i := uint64(0); b.Loop(); i++ {
				c.op(f, i)
			}
		})
	}
}
