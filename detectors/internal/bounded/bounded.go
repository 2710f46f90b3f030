// Package bounded owns the fixed-capacity maps and sets that detectors keep
// beyond the baseline cache: per-credential and per-identity state (last
// sources, revocations, issued credentials, reported keys) that must not
// grow with the stream. Two kinds, both holding at most a fixed number of
// keys:
//
//   - LRU forgets the least recently used key first. A lookup with Get
//     makes its key the most recently used; Peek does not. Values live in
//     one slice and are updated in place through the pointer Get, Peek and
//     Add return.
//   - FIFO forgets the key inserted first; updating a key keeps its place.
//     A FIFO of struct{} values is a set.
//
// A lookup that finds its key allocates nothing, nor does an update; only a
// new key can (its map slot; the slices growing up to the capacity). A
// capacity below 1 counts as 1. Neither type is safe for concurrent use:
// detectors are called from one goroutine at a time.
package bounded

import "iter"

// LRU is a map holding at most a fixed number of keys that forgets the
// least recently used one first. Its entries live in one slice linked by
// index, freed slots reused, so touching and updating an entry allocate
// nothing.
type LRU[K comparable, V any] struct {
	index      map[K]int32
	nodes      []lruNode[K, V]
	free       []int32
	head, tail int32 // least and most recently used; -1 when empty
	capacity   int
	onEvict    func(K, *V)
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

// NewLRU returns an empty LRU of at most capacity keys. onEvict, when not
// nil, sees each entry the LRU evicts (to make room in Add, or by
// EvictOldest) just before it goes; Remove does not call it.
func NewLRU[K comparable, V any](capacity int, onEvict func(key K, v *V)) *LRU[K, V] {
	return &LRU[K, V]{index: make(map[K]int32), head: -1, tail: -1, capacity: max(capacity, 1), onEvict: onEvict}
}

// Len is the number of keys held.
func (l *LRU[K, V]) Len() int { return len(l.index) }

// Cap is the most keys held.
func (l *LRU[K, V]) Cap() int { return l.capacity }

// Get returns key's value and makes key the most recently used. The pointer
// is valid until the next Add.
func (l *LRU[K, V]) Get(key K) (*V, bool) {
	i, ok := l.index[key]
	if !ok {
		return nil, false
	}
	if i != l.tail {
		l.unlink(i)
		l.pushBack(i)
	}
	return &l.nodes[i].val, true
}

// Peek returns key's value without changing its place. The pointer is
// valid until the next Add.
func (l *LRU[K, V]) Peek(key K) (*V, bool) {
	i, ok := l.index[key]
	if !ok {
		return nil, false
	}
	return &l.nodes[i].val, true
}

// Add inserts key, which must be absent, as the most recently used key with
// the zero value and returns the value to fill, valid until the next Add.
// When the LRU is full it first evicts the least recently used key. key is
// kept as given: pass a string that shares no larger buffer (strings.Clone
// of a borrowed one).
func (l *LRU[K, V]) Add(key K) *V {
	for len(l.index) >= l.capacity {
		l.EvictOldest()
	}
	var i int32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
		l.nodes[i] = lruNode[K, V]{key: key}
	} else {
		i = int32(len(l.nodes))
		l.nodes = append(l.nodes, lruNode[K, V]{key: key})
	}
	l.index[key] = i
	l.pushBack(i)
	return &l.nodes[i].val
}

// Remove drops key if present.
func (l *LRU[K, V]) Remove(key K) {
	if i, ok := l.index[key]; ok {
		l.drop(i)
	}
}

// Oldest returns the least recently used key and its value.
func (l *LRU[K, V]) Oldest() (K, *V, bool) {
	if l.head < 0 {
		var zero K
		return zero, nil, false
	}
	return l.nodes[l.head].key, &l.nodes[l.head].val, true
}

// EvictOldest drops the least recently used key, if any, telling onEvict.
func (l *LRU[K, V]) EvictOldest() {
	if l.head < 0 {
		return
	}
	if l.onEvict != nil {
		n := &l.nodes[l.head]
		l.onEvict(n.key, &n.val)
	}
	l.drop(l.head)
}

// All yields the keys and values from the least to the most recently used.
// The LRU must not change during the iteration.
func (l *LRU[K, V]) All() iter.Seq2[K, *V] {
	return func(yield func(K, *V) bool) {
		for i := l.head; i >= 0; i = l.nodes[i].next {
			if !yield(l.nodes[i].key, &l.nodes[i].val) {
				return
			}
		}
	}
}

func (l *LRU[K, V]) drop(i int32) {
	delete(l.index, l.nodes[i].key)
	l.unlink(i)
	l.nodes[i] = lruNode[K, V]{} // release the key and anything the value holds
	l.free = append(l.free, i)
}

func (l *LRU[K, V]) unlink(i int32) {
	n := &l.nodes[i]
	if n.prev >= 0 {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = -1, -1
}

func (l *LRU[K, V]) pushBack(i int32) {
	n := &l.nodes[i]
	n.prev, n.next = l.tail, -1
	if l.tail >= 0 {
		l.nodes[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
}

// FIFO is a map holding at most a fixed number of keys that forgets the key
// inserted first; updating a key keeps its place. The keys are also kept in
// a ring in insertion order. The zero FIFO is not usable: use NewFIFO.
type FIFO[K comparable, V any] struct {
	m        map[K]V
	ring     []K
	next     int // the oldest key's slot once the ring is full
	capacity int
}

// NewFIFO returns an empty FIFO of at most capacity keys.
func NewFIFO[K comparable, V any](capacity int) *FIFO[K, V] {
	return &FIFO[K, V]{m: make(map[K]V), capacity: max(capacity, 1)}
}

// Len is the number of keys held.
func (f *FIFO[K, V]) Len() int { return len(f.m) }

// Cap is the most keys held.
func (f *FIFO[K, V]) Cap() int { return f.capacity }

// Get returns key's value.
func (f *FIFO[K, V]) Get(key K) (V, bool) {
	v, ok := f.m[key]
	return v, ok
}

// Put sets key's value. A new key is the newest; when the FIFO is full the
// oldest key goes to make room for it. An existing key keeps its place.
func (f *FIFO[K, V]) Put(key K, v V) {
	if _, ok := f.m[key]; !ok {
		if len(f.ring) < f.capacity {
			f.ring = append(f.ring, key)
		} else {
			delete(f.m, f.ring[f.next])
			f.ring[f.next] = key
			f.next = (f.next + 1) % f.capacity
		}
	}
	f.m[key] = v
}
