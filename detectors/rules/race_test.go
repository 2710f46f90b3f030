//go:build race

package rules

// raceEnabled shrinks the generated population of TestPackQuietOnNormalWeek:
// the race detector slows the pipeline several times over.
const raceEnabled = true
