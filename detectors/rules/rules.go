package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Defaults for Options.
const (
	// DefaultCostLimit bounds one evaluation. The pack's rules cost under 100;
	// the limit is there to stop a rule that loops over a long string or list
	// from stalling the pipeline, not to ration normal rules.
	DefaultCostLimit = 10000
	// DefaultMaxExprSize bounds an expression's length in code points, well
	// above any readable rule.
	DefaultMaxExprSize = 4096
)

// Options tune compilation and evaluation. The zero value uses the defaults.
type Options struct {
	CostLimit   uint64 // per-evaluation CEL cost limit; 0 means DefaultCostLimit
	MaxExprSize int    // parser expression size limit; 0 means DefaultMaxExprSize
	// OnError, if set, is called with the rule id and the error each time a
	// rule fails to evaluate, so the caller can log which rule is broken. It
	// runs on the goroutine that called Detect.
	OnError func(ruleID string, err error)
}

func (o Options) costLimit() uint64 {
	if o.CostLimit == 0 {
		return DefaultCostLimit
	}
	return o.CostLimit
}

func (o Options) maxExprSize() int {
	if o.MaxExprSize == 0 {
		return DefaultMaxExprSize
	}
	return o.MaxExprSize
}

// scores maps severity to a finding score, leaving room above each rank for
// built-in detectors whose scores grow with the size of the deviation.
var scores = map[schemas.Severity]int{
	schemas.SeverityInfo:     20,
	schemas.SeverityLow:      40,
	schemas.SeverityMedium:   60,
	schemas.SeverityHigh:     80,
	schemas.SeverityCritical: 95,
}

var (
	idPattern        = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	techniquePattern = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
)

// rule is one compiled rule.
type rule struct {
	id          string
	description string
	severity    schemas.Severity
	technique   string
	prg         cel.Program
	tracked     bool // evaluated with runtime cost tracking
	response    *Response
	file        string
	line, col   int // position of the rule in its file
	tests       []testCase
	lint        []*Error // what Lint found in the rule's expression
}

func (r *rule) pos() string { return fmt.Sprintf("%s:%d:%d", r.file, r.line, r.col) }

// Set is an immutable set of compiled rules; it implements
// detectors.Detector. Detect may be called from several goroutines at once.
type Set struct {
	rules   []*rule
	byID    map[string]*rule
	errs    *atomic.Uint64
	onError func(string, error)
}

var _ detectors.Detector = (*Set)(nil)

// Load reads rule files, and every *.yaml and *.yml file directly inside a
// directory argument, with default Options.
func Load(paths ...string) (*Set, error) { return Options{}.Load(paths...) }

// Load reads, checks and compiles rule files. It returns all problems of all
// files joined (each an *Error), and no Set unless there are none.
func (o Options) Load(paths ...string) (*Set, error) {
	return o.load(new(atomic.Uint64), paths)
}

func (o Options) load(errs *atomic.Uint64, paths []string) (*Set, error) {
	if len(paths) == 0 {
		return nil, errors.New("rules: no rule files given")
	}
	c, err := o.newCompiler(false)
	if err != nil {
		return nil, err
	}
	var problems []error
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			problems = append(problems, &Error{File: p, Msg: err.Error()})
			continue
		}
		for _, f := range files {
			problems = append(problems, c.file(f)...)
		}
	}
	return c.set(errs, problems)
}

// LoadData checks and compiles one rule file held in memory (the embedded
// default pack); name is the file name errors and test results show.
func (o Options) LoadData(name string, data []byte) (*Set, error) {
	c, err := o.newCompiler(false)
	if err != nil {
		return nil, err
	}
	return c.set(new(atomic.Uint64), c.data(name, data))
}

func (o Options) newCompiler(lint bool) (*compiler, error) {
	env, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	return &compiler{opts: o, env: env, seen: map[string]*rule{}, lint: lint}, nil
}

func newEnv(o Options) (*cel.Env, error) {
	env, err := cel.NewEnv(append(append(varDecls(), funcDecls()...),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(o.maxExprSize()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("rules: build CEL environment: %w", err)
	}
	return env, nil
}

func (c *compiler) set(errs *atomic.Uint64, problems []error) (*Set, error) {
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	s := &Set{rules: c.rules, byID: make(map[string]*rule, len(c.rules)), errs: errs, onError: c.opts.OnError}
	for _, r := range c.rules {
		s.byID[r.id] = r
	}
	return s, nil
}

// expand returns p itself, or the rule files directly inside directory p in
// name order, so load order (and thus finding order) is stable.
func expand(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(p, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return files, nil
}

// compiler accumulates the rules of all files of one Load.
type compiler struct {
	opts  Options
	env   *cel.Env
	rules []*rule
	seen  map[string]*rule // id → first definition, across files
	lint  bool             // also look for expressions that can never match
}

func (c *compiler) file(path string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{&Error{File: path, Msg: err.Error()}}
	}
	return c.data(path, data)
}

func (c *compiler) data(path string, data []byte) []error {
	d := newDecoder(path, data)
	root := d.document(data)
	if root == nil {
		return d.errs
	}
	top := d.mapping(root, "", "rule file", "rules")
	if top == nil {
		return d.errs
	}
	list := d.required(top, root, "", "rules")
	if list == nil {
		return d.errs
	}
	if list.Kind != yaml.SequenceNode {
		// `rules:` with nothing after it is null: the same as an empty list.
		if list.Tag != "!!null" {
			d.errorf(list, "", "rules must be a list, got %s", kindName(list))
		}
		return d.errs
	}
	for _, n := range list.Content {
		c.rule(d, n)
	}
	return d.errs
}

func (c *compiler) rule(d *decoder, n *yaml.Node) {
	// Every error names the rule: by its id as written when it has one (even
	// an invalid one), else by its place in the load.
	name := fmt.Sprintf("#%d", len(c.rules)+1)
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i], n.Content[i+1]; k.Value == "id" && v.Kind == yaml.ScalarNode && v.Value != "" {
				name = v.Value
			}
		}
	}
	r := &rule{file: d.file, line: n.Line, col: n.Column}
	// A rule with errors is kept too: Load returns no Set when any file has
	// errors, and counting it keeps the "#n" names of later rules right.
	c.rules = append(c.rules, r)
	f := d.mapping(n, name, "rule", "id", "description", "severity", "technique", "expr", "response", "tests")
	if f == nil {
		return
	}
	if v := d.required(f, n, name, "id"); v != nil {
		if id, ok := d.scalar(v, name, "id"); ok {
			switch prev := c.seen[id]; {
			case !idPattern.MatchString(id):
				d.errorf(v, name, "id %q must be lowercase letters, digits, '.', '_' or '-'", id)
			case prev != nil:
				d.errorf(v, name, "duplicate rule id, first defined at %s", prev.pos())
			default:
				r.id = id
				c.seen[id] = r
			}
		}
	}

	if v := d.required(f, n, name, "description"); v != nil {
		r.description, _ = d.scalar(v, name, "description")
	}
	if v := d.required(f, n, name, "severity"); v != nil {
		if s, good := d.scalar(v, name, "severity"); good {
			if sev, known := schemas.ParseSeverity(s); known {
				r.severity = sev
			} else {
				d.errorf(v, name, "severity %q must be one of info, low, medium, high, critical", s)
			}
		}
	}
	if v := f["technique"]; v != nil {
		if t, good := d.scalar(v, name, "technique"); good {
			if techniquePattern.MatchString(t) {
				r.technique = t
			} else {
				d.errorf(v, name, "technique %q is not a MITRE ATT&CK id such as T1078 or T1078.004", t)
			}
		}
	}
	if v := d.required(f, n, name, "expr"); v != nil {
		if expr, good := d.scalar(v, name, "expr"); good {
			r.prg, r.tracked, r.lint = c.compile(d, v, name, expr)
		}
	}
	if v := f["response"]; v != nil {
		r.response = d.response(v, name)
	}
	if v := f["tests"]; v != nil {
		r.tests = d.tests(v, name)
	}
}

// compile type-checks expr and builds its program, reporting CEL's issues at
// their place in the file.
func (c *compiler) compile(d *decoder, n *yaml.Node, name, expr string) (prg cel.Program, tracked bool, lint []*Error) {
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			d.errs = append(d.errs, d.exprError(n, name, e.Location.Line(), e.Location.Column(), e.Message))
		}
		return nil, false, nil
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		d.errorf(n, name, "expr has type %s, want bool", ast.OutputType())
		return nil, false, nil
	}
	native := ast.NativeRep()
	bad := false
	checkCalls(native, func(id int64, msg string) {
		loc := native.SourceInfo().GetStartLocation(id)
		d.errs = append(d.errs, d.exprError(n, name, loc.Line(), loc.Column(), msg))
		bad = true
	})
	if bad {
		return nil, false, nil
	}
	if c.lint {
		lint = lintExpr(c.env, ast, func(id int64, msg string) *Error {
			line, col := startOf(native, id)
			return d.exprError(n, name, line, col, msg)
		})
	}
	// OptOptimize folds constants and compiles constant regular
	// expressions of matches() once, here, instead of per evaluation;
	// literalCIDRs does the same for CIDR prefixes.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize), cel.CustomDecoratorV2(literalCIDRs)}
	// Runtime cost tracking costs more than most rules themselves, so it is
	// switched on only for rules whose worst case, with every string as long
	// as the largest record a decoder accepts, could exceed the limit.
	est, err := c.env.EstimateCost(ast, boundedStrings{max: ingest.DefaultMaxRecordBytes})
	if tracked = err != nil || est.Max > c.opts.costLimit(); tracked {
		opts = append(opts, cel.CostLimit(c.opts.costLimit()))
	}
	prg, err = c.env.Program(ast, opts...)
	if err != nil {
		d.errorf(n, name, "expr: %v", err)
		return nil, false, nil
	}
	return prg, tracked, lint
}

// startOf is where the subexpression with id begins in the source: the
// leftmost position of it and its descendants (CEL places a binary
// operator at the operator). Id 0 is the whole expression, which begins at
// 1:0.
func startOf(a *celast.AST, id int64) (line, col int) {
	if id == 0 {
		return 1, 0
	}
	e := celast.NavigateAST(a)
	var target celast.NavigableExpr
	for _, x := range celast.MatchDescendants(e, func(x celast.NavigableExpr) bool { return x.ID() == id }) {
		target = x
	}
	loc := a.SourceInfo().GetStartLocation(id)
	line, col = loc.Line(), loc.Column()
	if target == nil {
		return line, col
	}
	for _, x := range celast.MatchDescendants(target, func(celast.NavigableExpr) bool { return true }) {
		l := a.SourceInfo().GetStartLocation(x.ID())
		xl, xc := l.Line(), l.Column()
		if x.Kind() == celast.IdentKind {
			// A qualified variable (event.action) sits at its last dot.
			if i := strings.LastIndexByte(x.AsIdent(), '.'); i > 0 {
				xc -= i
			}
		}
		if xl > 0 && (xl < line || xl == line && xc < col) {
			line, col = xl, xc
		}
	}
	return line, col
}

// boundedStrings tells CEL's cost estimator that no string a rule sees is
// longer than a record: every one comes from a decoded record, and decoders
// reject records over ingest.DefaultMaxRecordBytes.
type boundedStrings struct{ max uint64 }

func (boundedStrings) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (b boundedStrings) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if n.ComputedSize() != nil {
		return nil
	}
	if t := n.Type(); t != nil && (t.IsExactType(types.StringType) || t.IsExactType(types.BytesType)) {
		return &cost.SizeEstimate{Min: 0, Max: b.max}
	}
	return nil
}

// Name implements detectors.Detector.
func (s *Set) Name() string { return "rules" }

// Response returns the response rule ruleID suggests, and false when the
// rule names none or there is no such rule. Findings carry the rule id
// (schemas.Finding.RuleID), so the response policy (issue 6) looks the
// suggestion up here rather than in the finding.
func (s *Set) Response(ruleID string) (Response, bool) {
	r := s.byID[ruleID]
	if r == nil || r.response == nil {
		return Response{}, false
	}
	return *r.response, true
}

// Files lists the files the set's rules came from, in load order.
func (s *Set) Files() []string {
	var files []string
	for _, r := range s.rules {
		if len(files) == 0 || files[len(files)-1] != r.file {
			files = append(files, r.file)
		}
	}
	return files
}

// Len returns the number of rules in the set.
func (s *Set) Len() int { return len(s.rules) }

// Errors returns how many rule evaluations have failed (cost limit exceeded,
// a runtime error such as an invalid regular expression). Sets loaded by one
// Engine share its counter, so the count survives reloads.
func (s *Set) Errors() uint64 { return s.errs.Load() }

// Detect implements detectors.Detector: every rule that evaluates to true
// appends one finding. A rule that fails to evaluate is counted and skipped;
// it never stops the other rules.
func (s *Set) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if len(s.rules) == 0 {
		return dst
	}
	act := newActivation(in)
	defer act.release()
	for _, r := range s.rules {
		match, err := r.eval(act)
		if err != nil {
			s.errs.Add(1)
			if s.onError != nil {
				s.onError(r.id, err)
			}
			continue
		}
		if match {
			dst = append(dst, r.finding(act))
		}
	}
	return dst
}

func (r *rule) eval(act *activation) (bool, error) {
	out, _, err := r.prg.Eval(act)
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", r.id, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		// The checker proved the type is bool; this guards the contract.
		return false, fmt.Errorf("rule %s: evaluated to %s, want bool", r.id, out.Type())
	}
	return bool(b), nil
}

func (r *rule) finding(act *activation) schemas.Finding {
	in, ev := act.in, act.in.Event
	w := in.Window
	act.stats()
	var actions, peers, networks int
	if p := in.Profile; p != nil {
		actions, peers, networks = p.KnownCount(baseline.DimAction), p.KnownCount(baseline.DimPeer), p.KnownCount(baseline.DimNetwork)
	}
	return schemas.Finding{
		ID:       schemas.FindingID("rule:"+r.id, ev.Identity.ID, strconv.FormatInt(hourOf(ev.Time.Time), 10)),
		Detector: "rule",
		RuleID:   r.id,
		Identity: ev.Identity,
		Severity: r.severity,
		Score:    scores[r.severity],
		Title:    r.description,
		Explanation: fmt.Sprintf("rule %s matched %s: %d denied and %d failed of %d calls this hour; baseline %.1f±%.1f calls/h",
			r.id, ev.Action, w.Denied, w.Failures, w.Count, act.mean, act.sd),
		Technique: r.technique,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternMatch,
			Observed: fmt.Sprintf("%s: %d calls, %d denied, %d failed, %d bytes out this hour", ev.Action, w.Count, w.Denied, w.Failures, w.BytesOut),
			Baseline: fmt.Sprintf("%.1f±%.1f calls/h over %d h; %d known actions, %d peers, %d networks", act.mean, act.sd, act.hours, actions, peers, networks),
		},
	}
}

// hourOf is the unix hour a time falls in, the unit of finding ids.
func hourOf(t time.Time) int64 { return t.Unix() / 3600 }
