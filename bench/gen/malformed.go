package gen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Malformation kinds, cycled through the formats.
const (
	malTruncated = iota
	malBadUTF8
	malWrongType
	malNotJSON
	numMal
)

// malformed schedules cfg.Malformed bad records evenly over the run, each a
// corrupted version of a normal record of some identity.
func (g *generator) malformed() []event {
	n := g.cfg.Malformed
	if n == 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), 0x6d616c666f726d64)) // "malformd"
	span := g.end - g.start
	step := span / int64(n)
	var evs []event
	for i := range n {
		t := g.start + int64(i)*step + step/2
		if step > 4 {
			t += r.Int64N(step/2) - step/4
		}
		var ev event
		p := g.pop
		switch i % 4 {
		case 0:
			if len(p.workloads) == 0 || len(p.workloads[0].edges) == 0 {
				continue
			}
			ev = g.meshEvent(r, r.IntN(len(p.workloads)), t)
		case 1:
			if len(p.keys) == 0 {
				continue
			}
			ev = g.kongEvent(r, r.IntN(len(p.keys)), t)
		case 2:
			if len(p.roles) == 0 {
				continue
			}
			ev = g.roleEvent(r, r.IntN(len(p.roles)), t)
		case 3:
			if len(p.vault) == 0 {
				continue
			}
			ev = g.newEvent(kVaultResp, t, r)
			ev.id, ev.a, ev.b, ev.c = int32(r.IntN(len(p.vault))), vRead, 1, t-int64(time.Hour)
		}
		ev.out = outOK
		ev.mal = uint8((i+i/4)%numMal) + 1
		evs = append(evs, ev)
	}
	return evs
}

// corrupt turns the rendered good record b of ev into its malformed form.
func (rr *renderer) corrupt(ev *event, b []byte) []byte {
	r := rr.r
	switch int(ev.mal) - 1 {
	case malTruncated:
		return b[:len(b)/3+r.IntN(len(b)/3)]
	case malBadUTF8:
		k := map[uint8]string{kMesh: `"user_agent":"`, kKong: `"uri":"`, kCloudTrail: `"userAgent":"`}[ev.kind]
		if k == "" {
			k = `"path":"`
		}
		i := bytes.Index(b, []byte(k))
		if i < 0 {
			return append(b[:len(b)/2], 0xff)
		}
		i += len(k)
		return append(b[:i:i], append([]byte{0xc3, 0x28, 0xff, 0xfe}, b[i:]...)...)
	case malWrongType:
		switch ev.kind {
		case kMesh:
			return wrapValue(b, `"response_code":`, `{"code":`, `}`)
		case kKong:
			return wrapValue(b, `"status":`, `{"code":`, `}`)
		case kCloudTrail:
			return wrapValue(b, `"eventTime":`, `{"value":`, `}`)
		default:
			return wrapValue(b, `"type":`, `[`, `]`)
		}
	}
	// Not JSON at all: what else tends to end up on the same pipe.
	t := time.Unix(0, ev.t).UTC()
	switch ev.kind {
	case kMesh:
		// Envoy's default text access-log format.
		return fmt.Appendf(b[:0], `[%s] "GET /v1/orders/%d HTTP/1.1" 200 - via_upstream - "-" 0 %d %d %d "-" "Go-http-client/1.1" "%s" "orders:8080" "10.64.3.7:8080" inbound|8080|| 127.0.0.6:%d 10.64.3.7:8080 10.64.9.3:%d outbound_.8080_._.api.orders.svc.cluster.local default`,
			t.Format("2006-01-02T15:04:05.000Z"), 10000+r.IntN(90000), 200+r.IntN(3000), 1+r.IntN(80), 1+r.IntN(70), uuidString(r.Uint64(), r.Uint64()), 32768+r.IntN(20000), 32768+r.IntN(20000))
	case kKong:
		return fmt.Appendf(b[:0], `%s [error] 1287#0: *%d [kong] handler.lua:98 [file-log] failed to open the file: No such file or directory, client: 100.64.3.9, server: kong, request: "GET /api/v1/orders/%d HTTP/1.1", host: "api.example.com"`,
			t.Format("2006/01/02 15:04:05"), 1000+r.IntN(900000), 100000+r.IntN(900000))
	case kCloudTrail:
		return fmt.Appendf(b[:0], "AWSLogs/%s/CloudTrail/us-east-1/%s/%s_CloudTrail_us-east-1_%s_%s.json.gz",
			account, t.Format("2006/01/02"), account, t.Format("20060102T1504Z"), strconv.FormatUint(r.Uint64()>>20, 36))
	default:
		return fmt.Appendf(b[:0], `%s [ERROR] audit: backend failed to log response: backend=file/ error="write /vault/logs/audit.log: no space left on device"`,
			t.Format(time.RFC3339Nano))
	}
}

// wrapValue wraps the scalar value after key in prefix and suffix.
func wrapValue(b []byte, key, prefix, suffix string) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return append(b[:len(b)-1:len(b)-1], ',', '}') // still invalid JSON
	}
	start := i + len(key)
	end := start
	inStr := false
	for end < len(b) {
		c := b[end]
		if c == '"' {
			inStr = !inStr
		} else if !inStr && (c == ',' || c == '}') {
			break
		}
		end++
	}
	out := make([]byte, 0, len(b)+len(prefix)+len(suffix))
	out = append(out, b[:start]...)
	out = append(out, prefix...)
	out = append(out, b[start:end]...)
	out = append(out, suffix...)
	return append(out, b[end:]...)
}
