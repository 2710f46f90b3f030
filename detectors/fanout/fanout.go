// Package fanout owns the peer fan-out detector: in one hour a workload
// calls many upstream peers it has never called before, far more than its
// call graph's history of growth explains. An attacker holding a workload's
// identity explores what it can reach from there: lateral movement through
// new peers (SPEC §5.8).
//
// Maths. Let N be the hour's first uses of upstream peers (Window.NewPeers,
// this event included), K the peers the identity knew before the hour (its
// known peer set less the hour's new ones, or Model.Peers when the built
// graph knows more) and A its age in days at the start of the hour, at least
// MinAge (default one day). Its usual growth is g = K/A new peers a day, and
// the hour is a fan-out when
//
//	N ≥ T = max(MinNewPeers, ⌈GrowthRatio·g⌉)      (defaults 5 and 3)
//
// A whole day's growth is the yardstick, not an hour's, because new peers
// arrive in bursts (a release of the services a gateway fronts), and the
// age includes the identity's first discovery of its peers, which makes a
// young identity's yardstick generous. A service with three peers needs 5
// new ones in an hour; a gateway that met 900 peers in 30 days needs 90.
//
// The score grows with how much of the identity's graph the hour adds:
//
//	score = min(100, 50 + 25·log2(1 + N/max(K, 1)))
//
// so 5 new peers for an identity with 3 score 85 (high), for one with 10
// 65 (medium), for one with 40 54. Severity: ≥ 80 high, ≥ 60 medium, else
// low. The detector fires at the event that brings N to T, once per
// identity and hour (the id is the identity and the hour).
//
// It stays quiet while the identity is learning and right after a deploy of
// its workload (Relearning: a release that calls new services learns its
// peers). It needs no built model (the known peer set and FirstSeen suffice);
// with one, the graph's peer count and fan-in are in the explanation. An
// identity whose peer set is open (more than baseline.MaxKnown peers) has no
// new peers and is never judged. Technique T1021 (Remote Services: lateral
// movement), or T1046 (Network Service Discovery) when at least half of the
// hour's calls were denied or failed: a scan more than a use.
package fanout

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "peer_fanout"

// Config tunes the detector.
type Config struct {
	// MinNewPeers is the fewest new peers in an hour that can be a
	// fan-out. Default 5.
	MinNewPeers int `yaml:"min_new_peers"`
	// GrowthRatio is how many days' worth of the identity's usual peer
	// growth one hour must bring. Default 3.
	GrowthRatio float64 `yaml:"growth_ratio"`
	// MinAge floors the age the growth rate is measured over, so a young
	// identity that met its peers yesterday is not judged by an hour's
	// growth. Default 24h.
	MinAge time.Duration `yaml:"min_age"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{MinNewPeers: 5, GrowthRatio: 3, MinAge: 24 * time.Hour}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.MinNewPeers < 2 || c.MinNewPeers > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("min_new_peers must be within 2..%d, got %d", math.MaxUint16, c.MinNewPeers))
	}
	if !(c.GrowthRatio >= 1) || math.IsInf(c.GrowthRatio, 0) {
		errs = append(errs, fmt.Errorf("growth_ratio must be at least 1, got %v", c.GrowthRatio))
	}
	if c.MinAge < time.Hour {
		errs = append(errs, fmt.Errorf("min_age must be at least 1h, got %v", c.MinAge))
	}
	return errs
}

// Detector is the peer fan-out detector.
type Detector struct{ cfg Config }

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector { return &Detector{cfg: cfg} }

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	n := int(in.Window.NewPeers)
	if in.Learning || in.Relearning || n < d.cfg.MinNewPeers || in.Event.Target.Peer == "" {
		return dst
	}
	p, ev := in.Profile, in.Event
	if p.Knows(baseline.DimPeer, ev.Target.Peer) {
		return dst // not a new peer: the threshold was crossed (or not) earlier
	}
	// The hour's earlier new peers are in the known set already.
	known := max(0, p.KnownCount(baseline.DimPeer)-(n-1))
	m := p.Model()
	if m != nil {
		known = max(known, m.Peers)
	}
	hourStart := time.Unix(in.Window.Hour*3600, 0)
	age := max(hourStart.Sub(p.FirstSeen), d.cfg.MinAge)
	growth := float64(known) / age.Hours() * 24
	threshold := max(d.cfg.MinNewPeers, int(math.Ceil(d.cfg.GrowthRatio*growth)))
	if n != threshold {
		return dst // below it, or reported when the hour reached it
	}
	score := min(100, 50+25*math.Log2(1+float64(n)/float64(max(known, 1))))
	technique := "T1021" // Remote Services: lateral movement
	bad := in.Window.Denied + in.Window.Failures
	if 2*bad >= in.Window.Count {
		technique = "T1046" // Network Service Discovery: mostly refused calls
	}
	graph := fmt.Sprintf("%d known peers, %.2f new a day over %s", known, growth, days(age))
	if m != nil {
		graph += fmt.Sprintf("; built graph: %d peers, %d edges, fan-in %d", m.Peers, m.FanOut, m.FanIn)
	}
	hour := hourStart.UTC().Format("2006-01-02 15:00 MST")
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, strconv.FormatInt(in.Window.Hour, 10)),
		Detector: Name,
		Identity: ev.Identity,
		Severity: finding.Severity(score),
		Score:    int(score + 0.5),
		Title:    "Fan-out to new peers from " + ev.Identity.ID,
		Explanation: fmt.Sprintf("%s called %d peers it never called before in the hour from %s (latest %s), %d of %d calls denied or failed; it knew %d peers and met %.2f new ones a day",
			ev.Identity.ID, n, hour, ev.Target.Peer, bad, in.Window.Count, known, growth),
		Technique: technique,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternSurge,
			Observed: fmt.Sprintf("%d new peers in the hour from %s", n, hour),
			Baseline: graph,
		},
	})
}

func days(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }
