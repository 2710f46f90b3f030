package credmisuse

import (
	"github.com/nhisentry/nhisentry/internal/glob"

	"fmt"
	"net/netip"
	"strings"
)

// globs is a list of patterns matched in order.
type globs []string

func (g globs) match(s string) bool {
	for _, p := range g {
		if glob.Match(p, s) {
			return true
		}
	}
	return false
}

// summary names up to three patterns and how many more there are, for
// explanations.
func (g globs) summary() string {
	if len(g) <= 3 {
		return strings.Join(g, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(g[:3], ", "), len(g)-3)
}

// ranges is a list of address ranges.
type ranges []netip.Prefix

func parseRanges(field string, cidrs []string) (ranges, []error) {
	var rs ranges
	var errs []error
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a CIDR range: %v", field, c, err))
			continue
		}
		rs = append(rs, p.Masked())
	}
	return rs, errs
}

func (rs ranges) contains(a netip.Addr) bool {
	for _, p := range rs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// network is the /24 (IPv4) or /64 (IPv6) of a, as baseline.Network.
func network(a netip.Addr) netip.Prefix {
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// parseIP parses an event's source address, unmapping IPv4-in-IPv6.
func parseIP(ip string) (netip.Addr, bool) {
	if ip == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// isInstanceID reports whether an STS session name is an EC2 instance id
// (i- and 8 or 17 hex digits): the session of an instance profile role,
// whose credentials belong on that instance.
func isInstanceID(s string) bool {
	h, ok := strings.CutPrefix(s, "i-")
	if !ok || (len(h) != 8 && len(h) != 17) {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// accessKeyIn returns the first AWS access key id (AKIA…/ASIA… and 16 more
// upper-case letters or digits) inside s.
func accessKeyIn(s string) string {
	for i := 0; i+20 <= len(s); i++ {
		if (s[i] != 'A') || !(strings.HasPrefix(s[i:], "AKIA") || strings.HasPrefix(s[i:], "ASIA")) {
			continue
		}
		if i > 0 && keyChar(s[i-1]) {
			continue
		}
		j := i + 4
		for j < len(s) && keyChar(s[j]) {
			j++
		}
		if j-i == 20 {
			return s[i:j]
		}
	}
	return ""
}

func keyChar(c byte) bool { return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }

// k8sCluster returns the cluster of a k8s:sa/<cluster>/<ns>/<name> identity
// or of a k8s:<cluster> issuer, or "".
func k8sCluster(id string) string {
	if rest, ok := strings.CutPrefix(id, "k8s:sa/"); ok {
		c, _, _ := strings.Cut(rest, "/")
		return c
	}
	if rest, ok := strings.CutPrefix(id, "k8s:"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return ""
}
