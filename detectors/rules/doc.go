// Package rules owns user-written detections: CEL expressions in YAML rule
// files (detection as code, SPEC §5). It parses and type-checks rule files
// with errors that name file, rule and line:col; compiles each expression once
// with a cost limit; evaluates every rule against each event through a typed,
// flattened variable set (event.*, identity.*, baseline.*, window.*, now);
// turns matches into findings with deterministic ids; reloads files without
// dropping the rules that worked; runs the inline test cases a rule file
// carries (RunTests, `nhisentry rules test`); and finds rules that compile
// but can never match (Lint, `nhisentry rules lint`). The default rule pack
// lives in pack/default.yaml and is embedded in the binary (pack.Default).
//
// # Rule files
//
//	rules:
//	  - id: vault-long-ttl-token          # lowercase, unique across the loaded files
//	    description: A Vault token was created with a TTL over 24 hours
//	    severity: medium                  # info, low, medium, high, critical
//	    technique: T1098.001              # MITRE ATT&CK id, optional
//	    expr: >                           # CEL, must be bool
//	      event.action.startsWith("vault:update:auth/token/create") &&
//	      event.issuance.ttl_seconds > 86400
//	    response: {action: revoke_credential, mode: shadow}   # optional
//	    tests: [...]                      # inline cases, below
//
// # Variables
//
// Every variable is a flat, typed name (research/performance.md §2: typed
// variables and a custom activation cost 0.2–0.7 µs per rule, a
// map[string]any five times more). Strings are "" and numbers 0 when the
// event or baseline lacks the value.
//
//	event.id, event.action, event.service                       string
//	event.source.family|format|provider|account|region|cluster  string
//	event.identity.id|kind|name                                 string
//	event.credential.id|type                                    string
//	event.credential.issued_at|expires_at                       timestamp; timestamp(0) when unknown
//	event.actor.ip|user_agent|workload|namespace|node|session|peer  string
//	event.actor.network                                         string: the /24 or /64 of actor.ip
//	event.target.resource|peer                                  string
//	event.outcome.result (success, failure, denied), .error_code  string
//	event.outcome.status, event.bytes_in, event.bytes_out       int
//	event.duration_ms                                           double
//	event.time, now                                             timestamp (now: the engine's clock)
//	event.issuance.credential|credential_type|subject|issuer|requester  string
//	event.issuance.ttl_seconds                                  int
//	event.issuance.sans                                         list(string)
//	identity.id|kind|name                                       string (= event.identity.*)
//	identity.class                                              string: the identity class (service, ci, job, break_glass, …)
//	identity.cohort                                             string: the workload the identity belongs to, or ""
//	identity.learning                                           bool: in its class's learning period
//	identity.relearning                                         bool: shortly after a deploy of its workload
//	identity.first_seen, identity.last_seen                     timestamp; the event time for an identity never seen
//	identity.dormant_for                                        duration: event time − last_seen, 0 for a new identity
//	baseline.events, baseline.known_actions|known_peers|known_networks  int
//	baseline.action_known, .peer_known, .network_known          bool (an empty value counts as known)
//	baseline.hourly_mean, baseline.hourly_sd                    double: the hours before the event's, last week
//	baseline.has_model                                          bool: the identity has been rebuilt at least once
//	baseline.hourly_centre, baseline.hourly_spread              double: seasonal rate for the event's hour of week
//	baseline.active_share                                       double: share of days active in the event's hour of day
//	baseline.denied_ratio, baseline.failure_ratio               double
//	baseline.bytes_out_p50|p90|p99|max                          double (bytes, within a factor of two)
//	baseline.issuance_ttl                                       double: median TTL of credentials issued to it, seconds
//	baseline.fan_in, baseline.fan_out                           int: callers, and peer/route edges called
//	baseline.cohort_members, baseline.cohort_rate               int, double; 0 without a cohort
//	window.count|denied|failures|bytes_out                      int: this hour so far, this event included
//	window.new_actions, window.new_peers                        int: first uses this hour (probing, fan-out)
//
// The model-derived values are 0 until the identity's first rebuild: guard
// them with baseline.has_model.
//
// # Functions
//
// Besides CEL's standard functions and the ext.Strings library
// (replace, split, lowerAscii, …):
//
//	cidr_contains(cidr, ip) bool     cidr_contains("10.0.0.0/8", event.actor.ip)
//	ip.in_cidr(cidr) bool            event.actor.ip.in_cidr("2001:db8::/32")
//	    A literal prefix is parsed once, when the rule is compiled, and an
//	    invalid literal is a load error at its position. A bare address is
//	    its own /32 or /128; an empty or unparsable ip is in nothing.
//	is_private_ip(ip) bool           !is_private_ip(event.actor.ip)
//	    RFC 1918, IPv6 ULA, loopback, link-local, and 100.64.0.0/10.
//	glob(pattern, s) bool            glob("aws:role/*/ci-*", event.identity.id)
//	    '*' matches any run of characters ('/' and ':' included), '?' one.
//	spiffe_trust_domain(id) string   spiffe_trust_domain(event.target.peer) != "prod.example.org"
//	    "" for anything but a spiffe:// id.
//	baseline.knows(dim, value) bool  !baseline.knows("user_agent", event.actor.user_agent)
//	    dim is one of action, resource, peer, network, user_agent, region,
//	    cluster, issuer, credential, edge (a literal is checked at load); for
//	    network an address stands for its /24 or /64; an empty value counts
//	    as known, so missing data never looks new.
//	baseline.cohort_users(action) int   baseline.cohort_users(event.action) == 0
//	    how many members of the identity's cohort use the action; 0 without
//	    a cohort.
//
// Set membership on literal lists is CEL's own `in`, evaluated as a hash
// lookup once compiled:
//
//	event.action in ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail"]
//	event.outcome.status in [401, 403]
//
// Regular expressions (s.matches(re)) with a literal pattern are compiled
// once too.
//
// # Responses
//
// `response:` suggests what to do when the rule matches (SPEC §6): an action
// alone (`response: notify`) or `{action: ..., mode: ...}`, actions
// revoke_credential, disable_identity, isolate_workload and notify, modes
// dry_run (or dry-run), shadow, canary and enforce (none: the response
// policy's default). An unknown action or mode is a load error at its
// position. Findings carry no response field: the response policy (issue 6)
// reads the suggestion with (*Set).Response(finding.RuleID).
//
// # Inline tests
//
// Each case gives an event in the stable JSON form of schemas.Event (what
// `nhisentry decode` prints); an event without identity acts as
// "test:identity", without time at DefaultTestTime. The rule alone is
// evaluated on the input the engine would build, and must give want:
//
//	tests:
//	  - name: fires after a week of S3 traffic    # required
//	    event: {action: "iam:CreateUser", actor: {ip: 10.0.1.20}}
//	    want: true                                 # required
//	    baseline:             # a stored baseline (the shorthand)
//	      hourly: [3, 5, 4]   # counts of the hours before the event's, oldest first
//	      events: 400         # default: the sum of hourly
//	      actions: [...]      # known values: actions, resources, peers, networks,
//	                          # user_agents, regions, clusters, issuers, credentials, edges
//	      model: {hourly_centre: 4, hourly_spread: 1, active_share: 0.5, denied_ratio: 0.01,
//	              failure_ratio: 0, bytes_out_p50: 1023, bytes_out_p90: 4095,
//	              bytes_out_p99: 65535, bytes_out_max: 1048575, issuance_ttl: 3600, fan_in: 2}
//	    history:              # events before this one, folded in order as the engine does
//	      - {time: "2026-01-05T09:10:00Z", action: "s3:GetObject"}
//	    # or the identity's regular traffic, generated:
//	    history: {generate: {days: 7, per_hour: 3, actions: [...], networks: ["10.0.1.0/24"],
//	              peers: [...], user_agents: [...]}}
//	    cohort: {members: 5, rate: 3.0, actions: {"k8s:get:configmaps": 5}}
//	    class: ci             # the identity class (default: by the default class rules)
//	    window: {count: 12, denied: 10, failures: 0, bytes_out: 0}
//	    learning: false
//	    relearning: false
//	    now: 2026-01-05T10:00:00Z                  # default: the event time
//
// history events take the case's identity when they name none, and without
// times are a minute apart, ending a minute before the event; they may name
// other identities (a deploy of the workload by a CI account starts its
// re-learning). Generated events copy the event's identity, source,
// credential, namespace and workload; each of actions, networks (a prefix or
// an address), peers and user_agents defaults to the event's own value, and
// they are cycled through, per_hour events an hour for days×24 hours before
// the event's hour. The baseline, the cohort and the history all go into a
// fresh baseline.Cache, so classes, cohorts, learning, re-learning and the
// hour's window follow from them as in production. window, learning and
// relearning, when given, override what the history implies; without a
// history, learning defaults to false so stateless cases need not build one.
//
// # Lint
//
// Lint reports, besides every load error: comparisons of an enumerated
// variable (event.outcome.result, event.identity.kind, identity.kind,
// event.source.family, event.source.format) with a value it can never hold,
// such as event.outcome.result == "denid"; expressions that, with those
// comparisons replaced by their constant, constant-fold to false (never
// match) or true (match everything); two equalities of one variable with
// different literals joined by &&; and rules without a case that expects a
// match.
package rules
