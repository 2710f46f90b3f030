package gen

import (
	"strconv"
	"unicode/utf8"
)

// jw appends compact JSON to a byte slice. It tracks only whether a comma
// is due, which is enough for nested objects and arrays written in order.
type jw struct {
	b     []byte
	comma bool
}

const hexDigits = "0123456789abcdef"

func (w *jw) sep() {
	if w.comma {
		w.b = append(w.b, ',')
	}
}

func (w *jw) key(k string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.comma = false
}

// open starts an object; with a non-empty key, as that key's value.
func (w *jw) open(k string) {
	if k != "" {
		w.key(k)
	} else {
		w.sep()
	}
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jw) close() {
	w.b = append(w.b, '}')
	w.comma = true
}

// arr starts an array as the value of key k.
func (w *jw) arr(k string) {
	w.key(k)
	w.b = append(w.b, '[')
	w.comma = false
}

func (w *jw) endArr() {
	w.b = append(w.b, ']')
	w.comma = true
}

func (w *jw) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
	w.comma = true
}

// elem appends a string array element.
func (w *jw) elem(v string) {
	w.sep()
	w.b = appendJSONString(w.b, v)
	w.comma = true
}

func (w *jw) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
	w.comma = true
}

func (w *jw) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
	w.comma = true
}

func (w *jw) null(k string) {
	w.key(k)
	w.b = append(w.b, "null"...)
	w.comma = true
}

// raw appends v, which must be valid JSON, as the value of key k.
func (w *jw) raw(k, v string) {
	w.key(k)
	w.b = append(w.b, v...)
	w.comma = true
}

// valueStart begins a value whose bytes the caller appends to w.b itself.
func (w *jw) valueStart(k string) {
	w.key(k)
	w.b = append(w.b, '"')
}

func (w *jw) valueEnd() {
	w.b = append(w.b, '"')
	w.comma = true
}

// appendJSONString appends s as a JSON string, escaping what JSON requires.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendHex appends the low n hex digits of x.
func appendHex(b []byte, x uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, hexDigits[(x>>(uint(i)*4))&0xf])
	}
	return b
}

// appendUUID appends a version-4 style UUID made of hi and lo.
func appendUUID(b []byte, hi, lo uint64) []byte {
	hi = hi&^(0xf<<12) | 4<<12
	lo = lo&^(3<<62) | 2<<62
	b = appendHex(b, hi>>32, 8)
	b = append(b, '-')
	b = appendHex(b, hi>>16, 4)
	b = append(b, '-')
	b = appendHex(b, hi, 4)
	b = append(b, '-')
	b = appendHex(b, lo>>48, 4)
	b = append(b, '-')
	return appendHex(b, lo, 12)
}

// appendHMAC appends a Vault-style "hmac-sha256:<64 hex>" value derived
// from x.
func appendHMAC(b []byte, x uint64) []byte {
	b = append(b, "hmac-sha256:"...)
	for i := range uint64(4) {
		b = appendHex(b, mix(x+i*0x9e3779b97f4a7c15), 16)
	}
	return b
}

// mix is the splitmix64 finalizer: a cheap, good 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func uuidString(hi, lo uint64) string { return string(appendUUID(nil, hi, lo)) }

// awsID returns prefix followed by n characters of AWS's key-id alphabet
// derived from x.
func awsID(prefix string, x uint64, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	for i := range n {
		if i%12 == 0 {
			x = mix(x + uint64(i))
		}
		b = append(b, alphabet[x&31])
		x >>= 5
	}
	return string(b)
}

func appendIP(b []byte, net [3]byte, host byte) []byte {
	b = strconv.AppendUint(b, uint64(net[0]), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(net[1]), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(net[2]), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(host), 10)
}

func ipString(net [3]byte, host byte) string { return string(appendIP(nil, net, host)) }
