package baseline

import "math"

// Hourly counts are kept as IEEE 754 half-precision floats: a relative error
// of at most 1/2048 is far below the Poisson noise of any count the
// detectors compare, and it halves the largest part of a cached Profile
// while still holding counts up to 65,504 per hour without saturating early
// (larger counts round to the largest half value).

const maxHalf = 65504

// toHalf rounds a non-negative count to the nearest half-precision value.
func toHalf(v float32) uint16 {
	if v <= 0 {
		return 0
	}
	if v >= maxHalf {
		return 0x7bff
	}
	bits := math.Float32bits(v)
	exp := int32(bits>>23&0xff) - 127 + 15
	mant := bits & 0x7fffff
	if exp <= 0 { // subnormal half
		if exp < -10 {
			return 0
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint16(mant >> shift)
		if mant>>(shift-1)&1 == 1 {
			half++
		}
		return half
	}
	half := uint16(exp)<<10 | uint16(mant>>13)
	if mant&0x1000 != 0 { // round half up; a carry into the exponent is correct
		half++
	}
	return half
}

// fromHalf converts a half-precision value back.
func fromHalf(h uint16) float32 {
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		return float32(mant) / (1 << 24)
	case 0x1f:
		return maxHalf
	}
	return math.Float32frombits((exp-15+127)<<23 | mant<<13)
}
