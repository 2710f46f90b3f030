// Package sign is the signature nhisentry puts on the HTTP requests it
// sends to receivers that share a key with it (the findings webhook output
// and the webhook response provider), so a receiver checks both the same
// way: the hex HMAC-SHA256, keyed with the shared secret, of the Unix
// timestamp's decimal digits, a dot and the raw body.
package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// The headers a signed request carries.
const (
	HeaderTimestamp = "X-Nhisentry-Timestamp"
	HeaderSignature = "X-Nhisentry-Signature"
)

// Signature is the hex HMAC-SHA256, keyed with key, of the timestamp, a dot
// and the body: binding the timestamp lets a receiver refuse a replayed
// request.
func Signature(key, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Set stamps h with the time at (Unix seconds) and the signature of body
// at that time, "sha256=<hex>".
func Set(h http.Header, key string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, "sha256="+Signature(key, ts, body))
}
