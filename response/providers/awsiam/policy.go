package awsiam

import (
	"encoding/json"
	"reflect"
	"time"
)

// revokeDocument denies every action to sessions issued before at: the
// document the AWS console's "Revoke active sessions" writes, with at (to
// the second, UTC) in place of the console's "now", so sessions that were
// issued after the finding's evidence keep working.
func revokeDocument(at time.Time) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"` +
		at.UTC().Truncate(time.Second).Format(time.RFC3339) + `"}}}]}`
}

// revokeTime returns the cut-off of a session revocation document, in the
// console's form or ours (Action and Resource as "*" or ["*"]); false for
// any other document.
func revokeTime(doc string) (time.Time, bool) {
	var d struct {
		Statement []struct {
			Effect    string
			Action    any
			Resource  any
			Condition map[string]map[string]string
		}
	}
	if json.Unmarshal([]byte(doc), &d) != nil || len(d.Statement) != 1 {
		return time.Time{}, false
	}
	s := d.Statement[0]
	if s.Effect != "Deny" || !isStar(s.Action) || !isStar(s.Resource) || len(s.Condition) != 1 || len(s.Condition["DateLessThan"]) != 1 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s.Condition["DateLessThan"]["aws:TokenIssueTime"])
	return t, err == nil
}

func isStar(v any) bool {
	switch v := v.(type) {
	case string:
		return v == "*"
	case []any:
		return len(v) == 1 && v[0] == "*"
	}
	return false
}

// sameJSON reports whether two policy documents say the same, whatever
// their spacing and key order.
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
