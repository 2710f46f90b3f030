package rules

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Response is the action a rule suggests when it matches (SPEC §6). The rule
// only suggests: the response policy (issue 6) decides whether and how to
// act, applying its safety guards, and reads the suggestion with
// (*Set).Response by the finding's rule id.
type Response struct {
	// Action is one of ResponseActions.
	Action string
	// Mode is one of ResponseModes, or "" to leave the mode to the response
	// policy (whose default is dry_run).
	Mode string
}

// ResponseActions are the actions a rule may suggest.
var ResponseActions = []string{"revoke_credential", "disable_identity", "isolate_workload", "notify"}

// ResponseModes are the modes a rule may ask for; "dry-run" is accepted as
// dry_run.
var ResponseModes = []string{"dry_run", "shadow", "canary", "enforce"}

// response parses a rule's `response:`, either an action alone
// (`response: notify`) or a mapping (`response: {action: revoke_credential,
// mode: shadow}`).
func (d *decoder) response(n *yaml.Node, ruleID string) *Response {
	var r Response
	var actionNode, modeNode *yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		actionNode = n
	case yaml.MappingNode:
		f := d.mapping(n, ruleID, "response", "action", "mode")
		if f == nil {
			return nil
		}
		actionNode, modeNode = d.required(f, n, ruleID, "action"), f["mode"]
	default:
		d.errorf(n, ruleID, "response must be an action or a mapping with action and mode, got %s", kindName(n))
		return nil
	}
	ok := true
	if actionNode != nil {
		if a, good := d.scalar(actionNode, ruleID, "response action"); good {
			if slices.Contains(ResponseActions, a) {
				r.Action = a
			} else {
				d.errorf(actionNode, ruleID, "unknown response action %q (actions: %s)", a, strings.Join(ResponseActions, ", "))
				ok = false
			}
		} else {
			ok = false
		}
	} else {
		ok = false
	}
	if modeNode != nil {
		if m, good := d.scalar(modeNode, ruleID, "response mode"); good {
			if m == "dry-run" {
				m = "dry_run"
			}
			if slices.Contains(ResponseModes, m) {
				r.Mode = m
			} else {
				d.errorf(modeNode, ruleID, "unknown response mode %q (modes: %s)", m, strings.Join(ResponseModes, ", "))
				ok = false
			}
		} else {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return &r
}
