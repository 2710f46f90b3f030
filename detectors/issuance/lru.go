package issuance

// lru is a bounded map from string keys to values that forgets the least
// recently touched entry first. Entries live in one slice linked by index,
// so looking up, touching and updating allocate nothing; only a new key (its
// copy, the map slot) does. It is not safe for concurrent use.
//
// The same small type lives in detectors/credmisuse: detectors keep their state
// to themselves.
type lru[V any] struct {
	index      map[string]int32
	nodes      []lruNode[V]
	free       []int32
	head, tail int32 // least and most recently touched; -1 when empty
}

type lruNode[V any] struct {
	key        string
	val        V
	prev, next int32
}

func newLRU[V any]() *lru[V] {
	return &lru[V]{index: make(map[string]int32), head: -1, tail: -1}
}

// Len is the number of entries.
func (l *lru[V]) Len() int { return len(l.index) }

// get returns key's value, marking it most recently used when touch is set.
// The pointer is valid until the next add.
func (l *lru[V]) get(key string, touch bool) (*V, bool) {
	i, ok := l.index[key]
	if !ok {
		return nil, false
	}
	if touch && i != l.tail {
		l.unlink(i)
		l.pushBack(i)
	}
	return &l.nodes[i].val, true
}

// add inserts key, which must be absent, as the most recently used entry
// with the zero value and returns the value to fill. The caller owns the
// bound: it removes the oldest entries before adding past it. key is kept:
// the caller passes a copy it does not share.
func (l *lru[V]) add(key string) *V {
	var i int32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
		l.nodes[i] = lruNode[V]{key: key}
	} else {
		i = int32(len(l.nodes))
		l.nodes = append(l.nodes, lruNode[V]{key: key})
	}
	l.index[key] = i
	l.pushBack(i)
	return &l.nodes[i].val
}

// remove drops key if present.
func (l *lru[V]) remove(key string) {
	if i, ok := l.index[key]; ok {
		l.drop(i)
	}
}

// oldest returns the least recently used entry.
func (l *lru[V]) oldest() (string, *V, bool) {
	if l.head < 0 {
		return "", nil, false
	}
	return l.nodes[l.head].key, &l.nodes[l.head].val, true
}

// removeOldest drops the least recently used entry.
func (l *lru[V]) removeOldest() {
	if l.head >= 0 {
		l.drop(l.head)
	}
}

func (l *lru[V]) drop(i int32) {
	delete(l.index, l.nodes[i].key)
	l.unlink(i)
	var zero lruNode[V]
	l.nodes[i] = zero // release the key and anything the value holds
	l.free = append(l.free, i)
}

func (l *lru[V]) unlink(i int32) {
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

func (l *lru[V]) pushBack(i int32) {
	n := &l.nodes[i]
	n.prev, n.next = l.tail, -1
	if l.tail >= 0 {
		l.nodes[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
}
