package rules

import (
	"github.com/nhisentry/nhisentry/internal/glob"

	"fmt"
	"net/netip"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/nhisentry/nhisentry/baseline"
)

// Function and overload names. The overload ids are what the planner and
// the decorator below match on.
const (
	fnCIDRContains    = "cidr_contains"
	ovCIDRContains    = "cidr_contains_string_string"
	fnInCIDR          = "in_cidr"
	ovInCIDR          = "string_in_cidr_string"
	fnGlob            = "glob"
	fnTrustDomain     = "spiffe_trust_domain"
	fnIsPrivateIP     = "is_private_ip"
	fnBaselineKnows   = "baseline.knows"
	fnBaselineCohort  = "baseline.cohort_users"
	ovBaselineKnows   = "baseline_knows_string_string"
	ovBaselineCohort  = "baseline_cohort_users_string"
	errUnknownDimFmtf = "unknown baseline dimension %q (dimensions: %s)"
)

// funcDecls declares the helper functions of the rule language (doc.go
// documents each with an example). The pure ones are bound here; the
// baseline lookups are late-bound: the activation of the event being
// evaluated supplies them, because they read that event's profile.
func funcDecls() []cel.EnvOption {
	return []cel.EnvOption{
		cel.Function(fnCIDRContains,
			cel.Overload(ovCIDRContains, []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(cidr, ip ref.Val) ref.Val {
					if cidr.(types.String) == "" {
						return types.False // a missing field, such as an event without an address
					}
					pfx, err := parseCIDR(string(cidr.(types.String)))
					if err != nil {
						return types.NewErr("cidr_contains: %v", err)
					}
					return types.Bool(prefixContains(pfx, string(ip.(types.String))))
				}))),
		cel.Function(fnInCIDR,
			cel.MemberOverload(ovInCIDR, []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(ip, cidr ref.Val) ref.Val {
					if cidr.(types.String) == "" {
						return types.False
					}
					pfx, err := parseCIDR(string(cidr.(types.String)))
					if err != nil {
						return types.NewErr("in_cidr: %v", err)
					}
					return types.Bool(prefixContains(pfx, string(ip.(types.String))))
				}))),
		cel.Function(fnGlob,
			cel.Overload("glob_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(pattern, s ref.Val) ref.Val {
					return types.Bool(glob.Match(string(pattern.(types.String)), string(s.(types.String))))
				}))),
		cel.Function(fnTrustDomain,
			cel.Overload("spiffe_trust_domain_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(id ref.Val) ref.Val {
					return types.String(trustDomain(string(id.(types.String))))
				}))),
		cel.Function(fnIsPrivateIP,
			cel.Overload("is_private_ip_string", []*cel.Type{cel.StringType}, cel.BoolType,
				cel.UnaryBinding(func(ip ref.Val) ref.Val {
					return types.Bool(isPrivateIP(string(ip.(types.String))))
				}))),
		cel.Function(fnBaselineKnows,
			cel.Overload(ovBaselineKnows, []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.LateFunctionBinding())),
		cel.Function(fnBaselineCohort,
			cel.Overload(ovBaselineCohort, []*cel.Type{cel.StringType}, cel.IntType,
				cel.LateFunctionBinding())),
	}
}

// ResolveFunction implements interpreter.FunctionActivation: the baseline
// lookups of the event under evaluation. The bound methods are made once per
// pooled activation, so resolving allocates nothing.
func (a *activation) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	if a.knowsFn == nil {
		a.knowsFn, a.cohortFn = a.callKnows, a.callCohortUsers
	}
	switch name {
	case fnBaselineKnows:
		return a.knowsFn, true
	case fnBaselineCohort:
		return a.cohortFn, true
	}
	return nil, false
}

var _ interpreter.FunctionActivation = (*activation)(nil)

func (a *activation) callKnows(_ string, args ...ref.Val) ref.Val {
	if len(args) != 2 {
		return types.NewErr("baseline.knows: want 2 arguments, got %d", len(args))
	}
	dimName, ok1 := args[0].(types.String)
	v, ok2 := args[1].(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("baseline.knows: want (string, string)")
	}
	d, ok := baseline.ParseDim(string(dimName))
	if !ok {
		return types.NewErr(errUnknownDimFmtf, string(dimName), dimList())
	}
	value := string(v)
	if d == baseline.DimNetwork {
		if n := baseline.Network(value); n != "" {
			value = n // an address stands for its /24 or /64
		}
	}
	return types.Bool(a.knows(d, value))
}

func (a *activation) callCohortUsers(_ string, args ...ref.Val) ref.Val {
	if len(args) != 1 {
		return types.NewErr("baseline.cohort_users: want 1 argument, got %d", len(args))
	}
	action, ok := args[0].(types.String)
	if !ok {
		return types.NewErr("baseline.cohort_users: want a string")
	}
	if a.in.Cohort == nil {
		return types.IntZero
	}
	return types.Int(a.in.Cohort.ActionUsers(string(action)))
}

func dimList() string {
	names := make([]string, baseline.NumDims)
	for d := range baseline.NumDims {
		names[d] = d.String()
	}
	return strings.Join(names, ", ")
}

// parseCIDR parses a prefix such as "10.0.0.0/8" or "2001:db8::/32"; a bare
// address is the prefix of that one address.
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix or address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// prefixContains reports whether ip is inside pfx; an empty or unparsable
// address (a service name where an IP would be) is inside nothing.
func prefixContains(pfx netip.Prefix, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return pfx.Contains(a.Unmap())
}

// isPrivateIP reports whether ip is an address that never crosses the
// internet: RFC 1918 and IPv6 ULA, loopback, link-local, and the carrier-grade
// NAT range 100.64.0.0/10 that clusters and VPNs also use.
func isPrivateIP(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || cgnat.Contains(a)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// trustDomain is the trust domain of a SPIFFE id ("spiffe://td/path"), or
// "" for anything else.
func trustDomain(id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return ""
	}
	td, _, _ := strings.Cut(rest, "/")
	return strings.ToLower(td)
}

// literalCIDRs is a program decorator: a cidr_contains or in_cidr call whose
// prefix is a literal gets it parsed once, when the rule is compiled,
// instead of on every evaluation.
func literalCIDRs(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok {
		return i, nil
	}
	var ipArg, cidrArg interpreter.InterpretableV2
	switch args := call.Args(); {
	case call.OverloadID() == ovCIDRContains && len(args) == 2:
		cidrArg, ipArg = args[0], args[1]
	case call.OverloadID() == ovInCIDR && len(args) == 2:
		ipArg, cidrArg = args[0], args[1]
	default:
		return i, nil
	}
	c, ok := cidrArg.(interpreter.InterpretableConst)
	if !ok {
		return i, nil
	}
	s, ok := c.Value().(types.String)
	if !ok {
		return i, nil
	}
	pfx, err := parseCIDR(string(s))
	if err != nil {
		return nil, err // the checks at load report it with its position first
	}
	return &inPrefix{id: call.ID(), ip: ipArg, pfx: pfx}, nil
}

// inPrefix is a CIDR membership test against a prefix parsed at compile
// time.
type inPrefix struct {
	id  int64
	ip  interpreter.InterpretableV2
	pfx netip.Prefix
}

func (p *inPrefix) ID() int64 { return p.id }

func (p *inPrefix) Eval(act interpreter.Activation) ref.Val { return p.result(p.ip.Eval(act)) }

func (p *inPrefix) Exec(f *interpreter.ExecutionFrame) ref.Val { return p.result(p.ip.Exec(f)) }

func (p *inPrefix) result(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		if types.IsUnknownOrError(v) {
			return v
		}
		return types.NewErr("no such overload: CIDR membership of %s", v.Type())
	}
	return types.Bool(prefixContains(p.pfx, string(s)))
}

// checkCalls reports, at their place in the expression, literal arguments
// that can only fail at run time: a CIDR that does not parse, a baseline
// dimension that does not exist. report gets the expression id of the
// offending literal and the message.
func checkCalls(a *ast.AST, report func(id int64, msg string)) {
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		var lit ast.Expr
		switch fn := call.FunctionName(); {
		case fn == fnCIDRContains && !call.IsMemberFunction() && len(args) == 2:
			lit = args[0]
		case fn == fnInCIDR && call.IsMemberFunction() && len(args) == 1:
			lit = args[0]
		case fn == fnBaselineKnows && len(args) == 2:
			if s, ok := stringLiteral(args[0]); ok {
				if _, known := baseline.ParseDim(s); !known {
					report(args[0].ID(), fmt.Sprintf(errUnknownDimFmtf, s, dimList()))
				}
			}
			return
		default:
			return
		}
		if s, ok := stringLiteral(lit); ok {
			if _, err := parseCIDR(s); err != nil {
				report(lit.ID(), fmt.Sprintf("%s: %v", call.FunctionName(), err))
			}
		}
	}))
}

func stringLiteral(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}
