package formats

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
)

// corpus is every record of every decoder package's testdata: the fixture
// files and the hand-written cases.
func corpus(t *testing.T) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(filepath.ToSlash(path), "/testdata/") {
			return err
		}
		if strings.HasSuffix(path, ".golden.ndjson") || strings.HasSuffix(path, ".md") || strings.Contains(path, "/fuzz/") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return ingest.ReadRecords(f, path, func(r ingest.Record) error {
			out[path] = append(out[path], r.Value)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 4 {
		t.Fatalf("found %d testdata files", len(out))
	}
	return out
}

// TestAutoPicksADecoderThatWorks checks auto-detection against the whole
// corpus: whenever some built-in decoder turns a record into events, auto
// must route the record to a decoder that does.
func TestAutoPicksADecoderThatWorks(t *testing.T) {
	all := Builtin()
	auto := NewAuto(all)
	records, misrouted := 0, 0
	for path, recs := range corpus(t) {
		for i, raw := range recs {
			var works []string
			for _, d := range all {
				if evs, err := d.Decode(nil, ingest.Record{Value: raw}); err == nil && len(evs) > 0 {
					works = append(works, d.Format())
				}
			}
			if len(works) == 0 {
				continue
			}
			records++
			got := auto.Detect(raw)
			if got == nil || !contains(works, got.Format()) {
				misrouted++
				name := "nothing"
				if got != nil {
					name = got.Format()
				}
				t.Errorf("%s record %d: auto picked %s, decodable by %v", path, i+1, name, works)
			}
		}
	}
	t.Logf("%d decodable records, %d misrouted", records, misrouted)
}

// secretKey matches keys whose values are secrets in the formats we read.
var secretKey = regexp.MustCompile(`(?i)(secret|password|passwd|sessiontoken|session_token|client_token|authorization|bearer|private_?key|^token$|^apikey$|jwt)`)

// idKey matches keys that name a secret rather than hold it (secretId,
// secretArn, passwordLastUsed…).
var idKey = regexp.MustCompile(`(?i)(id|arn|name|type|lastused)$`)

// secretValues collects the string values of secret keys in a JSON record;
// values the source already HMAC'd (Vault) or redacted are not secrets.
func secretValues(v any, key string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			secretValues(e, k, out)
		}
	case []any:
		for _, e := range x {
			secretValues(e, key, out)
		}
	case string:
		if secretKey.MatchString(key) && !idKey.MatchString(key) && len(x) >= 8 && !strings.HasPrefix(x, "hmac-sha256:") && !strings.Contains(x, "****") && !strings.Contains(x, "REDACTED") {
			*out = append(*out, x)
		}
	}
}

var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// TestNoSecretReachesAnEvent decodes the whole corpus and checks that no
// secret value of the input, and nothing shaped like a JWT, is in the
// normalized events.
func TestNoSecretReachesAnEvent(t *testing.T) {
	auto := NewAuto(Builtin())
	checked := 0
	for path, recs := range corpus(t) {
		for i, raw := range recs {
			evs, err := auto.Decode(nil, ingest.Record{Value: raw})
			if err != nil || len(evs) == 0 {
				continue
			}
			out, err := json.Marshal(evs)
			if err != nil {
				t.Fatal(err)
			}
			if m := jwtShape.Find(out); m != nil {
				t.Errorf("%s record %d: a JWT reached the event: %.40s…", path, i+1, m)
			}
			var doc any
			if json.Unmarshal(bytes.TrimSpace(ingest.Unwrap(raw)), &doc) != nil {
				continue
			}
			var secrets []string
			secretValues(doc, "", &secrets)
			for _, s := range secrets {
				checked++
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("%s record %d: secret value %.6s… reached the event", path, i+1, s)
				}
			}
		}
	}
	t.Logf("%d secret values checked", checked)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
