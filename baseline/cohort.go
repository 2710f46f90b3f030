package baseline

import (
	"cmp"
	"slices"
	"strings"

	"github.com/nhisentry/nhisentry/schemas"
)

// DefaultMaxMembers caps CohortBaseline.Members when Cohorts is given no cap.
const DefaultMaxMembers = 256

// CohortKey names the workload h's identity belongs to, so identities of one
// workload share a cohort baseline and one replica that behaves unlike its
// peers stands out (SPEC §4):
//
//   - "k8s:<namespace>/<workload>" when h has both a namespace and a
//     workload. The workload is usually a pod name, so the suffix its
//     controller adds is stripped: "<name>-<pod-template-hash>-<5 chars>"
//     (a Deployment's ReplicaSet, and a CronJob's Job, whose middle part is
//     the scheduled minute) and "<name>-<ordinal>" (a StatefulSet) become
//     "<name>". Only those exact shapes are stripped: a hash of 6 to 10
//     characters of the alphabets Kubernetes uses and a suffix of 5
//     characters of its random-name alphabet, which has no vowels, or an
//     ordinal without leading zeros of at most 5 digits. Merging two
//     unrelated workloads would make one look unlike its "peers", while
//     missing a strip only leaves a replica without a cohort.
//   - "<kind>:<name>" for a token or certificate identity with a display
//     name. Such an identity is one credential instance (each rotated
//     certificate, each Vault token is its own identity), and what the
//     instances of one workload share is their name (certificate subject,
//     token display name).
//   - "" otherwise: a role, service account or API key is already the
//     workload's one identity, so it has no peers to compare with.
func CohortKey(h *History) string {
	if h == nil {
		return ""
	}
	return CohortOf(h.Identity, h.Namespace, h.Workload)
}

// CohortOf is CohortKey for an identity seen in an event, before any
// history is built: the cache's profiles and the builder agree on cohorts.
func CohortOf(id schemas.Identity, namespace, workload string) string {
	if namespace != "" && workload != "" {
		return "k8s:" + namespace + "/" + podWorkload(workload)
	}
	if (id.Kind == schemas.KindToken || id.Kind == schemas.KindCertificate) && id.Name != "" {
		return string(id.Kind) + ":" + id.Name
	}
	return ""
}

const (
	// podSuffixChars are the characters of the random suffix of a
	// generated name (k8s.io/apimachinery/pkg/util/rand).
	podSuffixChars = "bcdfghjklmnpqrstvwxz2456789"
	// templateHashChars are those of a pod-template-hash: the safe encoding
	// of a decimal hash uses "456789bcdf"; Kubernetes before 1.11 used the
	// decimal digits themselves, as does a CronJob's scheduled minute.
	templateHashChars = "0123456789bcdf"
)

// podWorkload strips a controller's pod-name suffix from name (see
// CohortKey) and returns name unchanged when it has none.
func podWorkload(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return name
	}
	rest, suffix := name[:i], name[i+1:]
	if len(suffix) == 5 && onlyChars(suffix, podSuffixChars) {
		if j := strings.LastIndexByte(rest, '-'); j > 0 {
			if hash := rest[j+1:]; len(hash) >= 6 && len(hash) <= 10 && onlyChars(hash, templateHashChars) {
				return rest[:j]
			}
		}
	}
	if len(suffix) >= 1 && len(suffix) <= 5 && onlyChars(suffix, "0123456789") && (suffix == "0" || suffix[0] != '0') {
		return rest
	}
	return name
}

func onlyChars(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Cohorts computes the CohortBaseline of every cohort with at least two
// members among bs (a cohort of one has no peers), keyed by cohort.
// Baselines with an empty Cohort are skipped; when one identity appears more
// than once, the highest Version counts. Members keeps the maxMembers
// alphabetically first identity ids (DefaultMaxMembers when maxMembers ≤ 0);
// Size, Rate, Spread and Actions cover every member.
func Cohorts(bs []*Baseline, maxMembers int) map[string]*CohortBaseline {
	if maxMembers <= 0 {
		maxMembers = DefaultMaxMembers
	}
	order := make([]*Baseline, 0, len(bs))
	for _, b := range bs {
		if b != nil && b.Cohort != "" {
			order = append(order, b)
		}
	}
	slices.SortFunc(order, func(x, y *Baseline) int {
		if c := strings.Compare(x.Cohort, y.Cohort); c != 0 {
			return c
		}
		if c := strings.Compare(x.Identity.ID, y.Identity.ID); c != 0 {
			return c
		}
		return cmp.Compare(y.Version, x.Version)
	})
	order = slices.CompactFunc(order, func(x, y *Baseline) bool {
		return x.Cohort == y.Cohort && x.Identity.ID == y.Identity.ID
	})
	out := make(map[string]*CohortBaseline)
	var s buildScratch
	for i, j := 0, 0; i < len(order); i = j {
		for j = i; j < len(order) && order[j].Cohort == order[i].Cohort; j++ {
		}
		group := order[i:j]
		if len(group) < 2 {
			continue
		}
		c := &CohortBaseline{
			Cohort:  group[0].Cohort,
			Size:    len(group),
			Members: make([]string, min(len(group), maxMembers)),
			Actions: make(map[string]int),
		}
		s.x = s.x[:0]
		for k, b := range group {
			if k < len(c.Members) {
				c.Members[k] = b.Identity.ID
			}
			s.x = append(s.x, b.Rate.Mean)
			for _, ks := range b.Known {
				if ks.Dim != DimAction.String() {
					continue
				}
				for _, v := range ks.Values {
					c.Actions[v.Value]++
				}
			}
		}
		c.Rate, c.Spread = s.medianMAD(s.x)
		out[c.Cohort] = c
	}
	return out
}

// SetCohortStats points each baseline's CohortStats at its cohort's entry
// in cohorts (as Cohorts returns them), or nil when it has none. Members of
// one cohort share the CohortBaseline, which must not be modified after.
func SetCohortStats(bs []*Baseline, cohorts map[string]*CohortBaseline) {
	for _, b := range bs {
		if b == nil {
			continue
		}
		b.CohortStats = nil
		if b.Cohort != "" {
			b.CohortStats = cohorts[b.Cohort]
		}
	}
}
