package baseline

import (
	"math"
	"testing"
)

func TestHalfRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, want float32
	}{
		{0, 0}, {1, 1}, {2, 2}, {3, 3}, {1000, 1000}, {2048, 2048}, {2049, 2050}, {4097, 4096}, {4099, 4100},
		{65504, 65504}, {1e6, 65504}, {0.5, 0.5}, {-3, 0},
	} {
		if got := fromHalf(toHalf(tc.in)); got != tc.want {
			t.Errorf("fromHalf(toHalf(%v)) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for v := float32(1); v < 65504; v = v*1.01 + 1 {
		got := fromHalf(toHalf(v))
		if rel := math.Abs(float64(got-v)) / float64(v); rel > 1.0/2048 {
			t.Fatalf("%v → %v: relative error %v", v, got, rel)
		}
	}
}
