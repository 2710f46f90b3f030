// Package baseline owns what nhisentry knows about each identity's normal
// behaviour: the Profile (known sets of actions, peers and source networks,
// hourly activity, current-hour counters), the Cache that keeps one Profile
// per identity in the processor and updates it online as events arrive, and
// the Loader seam through which a store (ClickHouse in chstore) fills the
// cache after a start or a rebalance, so no baseline is lost across restarts.
package baseline
