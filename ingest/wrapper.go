package ingest

import (
	"bytes"
	"time"

	json "github.com/goccy/go-json"
)

// Unwrap returns the log line inside the container-runtime wrappers that
// collectors add around it, or raw itself when there is none:
//
//   - CRI (containerd, CRI-O): "<RFC 3339 time> stdout|stderr F|P <line>"
//   - Docker json-file: {"log":"<line>","stream":"stdout","time":"…"}
//   - collectors that ship the line as "message" next to Kubernetes
//     metadata: {"message":"<line>","kubernetes":{…}}
//
// A partial CRI line (P) is returned as it is; reassembly belongs to the
// collector. Unwrap never fails: a record that merely looks wrapped is
// returned unchanged for the decoder to judge.
func Unwrap(raw []byte) []byte {
	if line, ok := unwrapCRI(raw); ok {
		return line
	}
	if len(raw) > 0 && raw[0] == '{' && (bytes.Contains(raw, []byte(`"stream"`)) || bytes.Contains(raw, []byte(`"kubernetes"`))) {
		var w struct {
			Log        *string         `json:"log"`
			Message    *string         `json:"message"`
			Stream     string          `json:"stream"`
			Kubernetes json.RawMessage `json:"kubernetes"`
		}
		if json.Unmarshal(raw, &w) != nil {
			return raw
		}
		switch {
		case w.Log != nil && w.Stream != "":
			return []byte(*w.Log)
		case w.Message != nil && (w.Stream != "" || len(w.Kubernetes) > 0):
			return []byte(*w.Message)
		}
	}
	return raw
}

func unwrapCRI(raw []byte) ([]byte, bool) {
	sp := bytes.IndexByte(raw, ' ')
	if sp < 20 || sp > 40 || raw[0] < '0' || raw[0] > '9' {
		return nil, false
	}
	if _, err := time.Parse(time.RFC3339Nano, string(raw[:sp])); err != nil {
		return nil, false
	}
	rest := raw[sp+1:]
	for _, stream := range []string{"stdout ", "stderr "} {
		if bytes.HasPrefix(rest, []byte(stream)) {
			rest = rest[len(stream):]
			if len(rest) >= 2 && (rest[0] == 'F' || rest[0] == 'P') && rest[1] == ' ' {
				return rest[2:], true
			}
		}
	}
	return nil, false
}
