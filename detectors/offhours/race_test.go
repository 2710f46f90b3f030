//go:build race

package offhours_test

func init() { raceEnabled = true }
