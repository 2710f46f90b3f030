package main

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
)

// owner is the set of repartition partitions this instance detects for,
// changed by the consumer group's handovers and read by the baseline cache.
type owner struct {
	of    kafkasrc.Partitioner
	mu    sync.RWMutex
	parts map[int]bool
	gauge prometheus.Gauge
}

func newOwner(partitions int, reg prometheus.Registerer) *owner {
	o := &owner{of: kafkasrc.NewPartitioner(partitions), parts: map[int]bool{}, gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nhi_detect_partitions_owned",
		Help: "Partitions of the repartition topic this instance detects for.",
	})}
	if reg != nil {
		reg.MustRegister(o.gauge)
	}
	return o
}

// set adds or removes partitions.
func (o *owner) set(parts []int, owned bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range parts {
		if owned {
			o.parts[p] = true
		} else {
			delete(o.parts, p)
		}
	}
	o.gauge.Set(float64(len(o.parts)))
}

// owns reports whether identity's events come to this instance.
func (o *owner) owns(identity string) bool {
	p := o.of.Of(identity)
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.parts[p]
}

// list is the owned partitions in order, for logs.
func (o *owner) list() []int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	l := make([]int, 0, len(o.parts))
	for p := range o.parts {
		l = append(l, p)
	}
	sort.Ints(l)
	return l
}
