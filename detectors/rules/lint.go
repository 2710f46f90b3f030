package rules

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// enums are the variables whose values are a closed set: a comparison of one
// of them with any other literal is a typo that makes the clause constant.
// The empty string is always possible (an event without the field).
var enums = func() map[string][]string {
	kinds := []string{}
	for _, k := range []schemas.IdentityKind{schemas.KindWorkload, schemas.KindRole, schemas.KindUser, schemas.KindServiceAccount,
		schemas.KindServicePrinc, schemas.KindAPIKey, schemas.KindCertificate, schemas.KindToken, schemas.KindUnknown} {
		kinds = append(kinds, string(k))
	}
	var fmts []string
	for _, d := range formats.Builtin() {
		fmts = append(fmts, d.Format())
	}
	return map[string][]string{
		"event.outcome.result": {string(schemas.ResultSuccess), string(schemas.ResultFailure), string(schemas.ResultDenied)},
		"event.identity.kind":  kinds,
		"identity.kind":        kinds,
		"event.source.family":  {string(schemas.FamilyMesh), string(schemas.FamilyGateway), string(schemas.FamilyCloudAudit), string(schemas.FamilyIssuance)},
		"event.source.format":  fmts,
	}
}()

// Lint loads rule files like Load and reports what makes rules useless
// although they compile: every load error (the set is nil then), and for a
// set that loads, comparisons of an enumerated variable with a value it can
// never have (event.outcome.result == "denid"), expressions that constant
// folding reduces to false (never match) or true (match every event), and
// rules none of whose inline tests expects a match. Problems come in file
// order.
func (o Options) Lint(paths ...string) (*Set, []*Error) {
	if len(paths) == 0 {
		return nil, []*Error{{Msg: "no rule files given"}}
	}
	c, err := o.newCompiler(true)
	if err != nil {
		return nil, []*Error{{Msg: err.Error()}}
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
	return c.lintResult(problems)
}

// LintData is Lint for one rule file held in memory.
func (o Options) LintData(name string, data []byte) (*Set, []*Error) {
	c, err := o.newCompiler(true)
	if err != nil {
		return nil, []*Error{{Msg: err.Error()}}
	}
	return c.lintResult(c.data(name, data))
}

func (c *compiler) lintResult(problems []error) (*Set, []*Error) {
	if len(problems) > 0 {
		out := make([]*Error, 0, len(problems))
		for _, p := range problems {
			var e *Error
			if !errors.As(p, &e) {
				e = &Error{Msg: p.Error()}
			}
			out = append(out, e)
		}
		return nil, out
	}
	s, _ := c.set(new(atomic.Uint64), nil)
	var out []*Error
	for _, r := range s.rules {
		out = append(out, r.lint...)
		if !slices.ContainsFunc(r.tests, func(tc testCase) bool { return tc.want }) {
			msg := "no inline test case expects a match (want: true), so nothing shows the rule can fire"
			if len(r.tests) == 0 {
				msg = "no inline test cases; add one that matches (want: true) and one that does not"
			}
			out = append(out, &Error{File: r.file, Line: r.line, Column: r.col, RuleID: r.id, Msg: msg})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Column < out[j].Column
	})
	return s, out
}

// verdict is what a comparison with an impossible value always gives.
type verdict struct {
	id    int64
	value bool
	msg   string
}

// impossibleComparisons finds comparisons of enumerated variables with
// values outside their set: `==` and `in` are always false, `!=` always
// true.
func impossibleComparisons(root ast.Expr) []verdict {
	var out []verdict
	ast.PostOrderVisit(root, ast.NewExprVisitor(func(e ast.Expr) {
		if v, ok := judge(e); ok {
			out = append(out, v)
		}
	}))
	return out
}

func judge(e ast.Expr) (verdict, bool) {
	if e.Kind() != ast.CallKind {
		return verdict{}, false
	}
	call := e.AsCall()
	args := call.Args()
	if len(args) != 2 || call.IsMemberFunction() {
		return verdict{}, false
	}
	switch fn := call.FunctionName(); fn {
	case operators.Equals, operators.NotEquals:
		name, lit, ok := identAndLiteral(args[0], args[1])
		if !ok {
			name, lit, ok = identAndLiteral(args[1], args[0])
		}
		if !ok {
			return verdict{}, false
		}
		allowed := enums[name]
		if lit == "" || slices.Contains(allowed, lit) {
			return verdict{}, false
		}
		always := fn == operators.NotEquals
		return verdict{e.ID(), always, fmt.Sprintf("%s is never %q (it is one of %s), so this comparison is always %t",
			name, lit, strings.Join(allowed, ", "), always)}, true
	case operators.In:
		name, ok := enumIdent(args[0])
		if !ok || args[1].Kind() != ast.ListKind {
			return verdict{}, false
		}
		allowed := enums[name]
		var bad []string
		for _, el := range args[1].AsList().Elements() {
			s, isLit := stringLiteral(el)
			if !isLit {
				return verdict{}, false
			}
			if s == "" || slices.Contains(allowed, s) {
				return verdict{}, false
			}
			bad = append(bad, fmt.Sprintf("%q", s))
		}
		return verdict{e.ID(), false, fmt.Sprintf("%s is never any of %s (it is one of %s), so this test is always false",
			name, strings.Join(bad, ", "), strings.Join(allowed, ", "))}, true
	}
	return verdict{}, false
}

func enumIdent(e ast.Expr) (string, bool) {
	if e.Kind() != ast.IdentKind {
		return "", false
	}
	name := e.AsIdent()
	_, ok := enums[name]
	return name, ok
}

func identAndLiteral(a, b ast.Expr) (string, string, bool) {
	name, ok := enumIdent(a)
	if !ok {
		return "", "", false
	}
	lit, ok := stringLiteral(b)
	return name, lit, ok
}

// replaceImpossible is an AST optimizer that replaces each impossible
// comparison by the constant it always gives, so constant folding can tell
// whether the whole expression still depends on the event.
type replaceImpossible struct{}

func (replaceImpossible) Optimize(ctx *cel.OptimizerContext, a *ast.AST) *ast.AST {
	root := ast.NavigateAST(a)
	for _, e := range ast.MatchDescendants(root, func(e ast.NavigableExpr) bool { _, ok := judge(e); return ok }) {
		v, _ := judge(e)
		ctx.UpdateExpr(e, ctx.NewLiteral(types.Bool(v.value)))
	}
	return a
}

// lintExpr reports the impossible comparisons of a checked expression and
// whether, with them replaced by their constant, it folds to a constant.
// at places a message at the start of the subexpression with an id (0: the
// whole expression).
func lintExpr(env *cel.Env, checked *cel.Ast, at func(id int64, msg string) *Error) []*Error {
	native := checked.NativeRep()
	var out []*Error
	for _, v := range impossibleComparisons(native.Expr()) {
		out = append(out, at(v.id, v.msg))
	}
	folder, err := cel.NewConstantFoldingOptimizer()
	if err != nil {
		return out
	}
	opt, err := cel.NewStaticOptimizer(replaceImpossible{}, folder)
	if err != nil {
		return out
	}
	folded, iss := opt.Optimize(env, checked)
	if iss.Err() != nil {
		return out
	}
	root := folded.NativeRep().Expr()
	if root.Kind() != ast.LiteralKind {
		if v := conflictingEqualities(native.Expr()); v != nil {
			out = append(out, at(v.id, v.msg))
		}
		return out
	}
	switch b, _ := root.AsLiteral().(types.Bool); b {
	case types.False:
		out = append(out, at(0, "the expression folds to false: the rule can never match"))
	case types.True:
		out = append(out, at(0, "the expression folds to true: the rule matches every event"))
	}
	return out
}

// conflictingEqualities finds, among the clauses joined by && at the top of
// the expression, two that require one variable to equal two different
// literals (event.action == "a" && event.action == "b").
func conflictingEqualities(root ast.Expr) *verdict {
	var clauses []ast.Expr
	var flatten func(e ast.Expr)
	flatten = func(e ast.Expr) {
		if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
			for _, a := range e.AsCall().Args() {
				flatten(a)
			}
			return
		}
		clauses = append(clauses, e)
	}
	flatten(root)
	want := map[string]string{}
	for _, c := range clauses {
		if c.Kind() != ast.CallKind || c.AsCall().FunctionName() != operators.Equals {
			continue
		}
		args := c.AsCall().Args()
		name, lit, ok := anyIdentAndLiteral(args[0], args[1])
		if !ok {
			name, lit, ok = anyIdentAndLiteral(args[1], args[0])
		}
		if !ok {
			continue
		}
		if prev, seen := want[name]; seen && prev != lit {
			return &verdict{c.ID(), false, fmt.Sprintf("%s must equal both %q and %q: the rule can never match", name, prev, lit)}
		}
		want[name] = lit
	}
	return nil
}

func anyIdentAndLiteral(a, b ast.Expr) (string, string, bool) {
	if a.Kind() != ast.IdentKind || b.Kind() != ast.LiteralKind {
		return "", "", false
	}
	lit := b.AsLiteral()
	if lit.Type() != types.StringType && lit.Type() != types.IntType && lit.Type() != types.BoolType {
		return "", "", false
	}
	return a.AsIdent(), fmt.Sprint(lit.Value()), true
}
