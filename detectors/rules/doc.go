// Package rules owns user-written detections: CEL expressions in YAML rule
// files (detection as code, SPEC §5). It parses and type-checks rule files
// with errors that name file, rule and line:col; compiles each expression once
// with a cost limit; evaluates every rule against each event through a typed,
// flattened variable set (event.*, identity.*, baseline.*, window.*, now);
// turns matches into findings with deterministic ids; reloads files without
// dropping the rules that worked; and runs the inline test cases a rule file
// carries. The default rule pack lives in pack/default.yaml.
package rules
