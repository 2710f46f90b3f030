//go:build race

package burst_test

func init() { raceEnabled = true }
