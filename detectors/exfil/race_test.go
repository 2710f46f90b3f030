//go:build race

package exfil_test

func init() { raceEnabled = true }
