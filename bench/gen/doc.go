// Package gen owns nhisentry's synthetic telemetry: a deterministic, seeded
// generator of realistic non-human-identity traffic written in the real input
// formats the ingest decoders read — Istio/Envoy JSON access logs with SPIFFE
// peer URI SANs, Kong log-plugin JSON, single AWS CloudTrail records and
// HashiCorp Vault audit-log entries, and with Config.Platform the platform's
// own logs: Kubernetes audit, cert-manager, SPIRE server and Certificate
// Transparency (certstream) — with labeled attack scenarios and malformed
// records injected at known times.
//
// `nhisentry demo`, the integration tests and the benchmarks under bench/ use
// it as their source of sample traffic. The same Config (seed included) always
// yields byte-identical records in the same order, so runs and detection
// quality reports are reproducible; whether attacks are injected does not
// change the normal traffic around them.
//
// The population is a few hundred identities: mesh workloads
// (spiffe://prod.example.org/ns/<ns>/sa/<name>), AWS roles in account
// 111122223333, Kong API keys and Vault clients using Kubernetes auth. Each
// has a log-normal base rate, a seasonal profile and a small fixed repertoire
// (peers and routes, AWS actions and resources, secret paths), fixed source
// networks and user agents, and rare normal failures, so that detectors meet
// both a learnable baseline and the noise a real one has.
//
// Scenarios. Config.Attacks injects the original four (Scenarios): a
// stolen session credential used from a new network, privilege probing,
// lateral movement through new peers and an API-key volume spike.
// Config.Scenarios selects any of AllScenarios instead, adding a session
// credential cloned and used from two networks at once, a workload's steady
// bulk exfiltration, a batch role woken after days of silence, a Vault token
// used after an operator revoked it, a burst of long-TTL Vault tokens and a
// CI role changing IAM from outside its pipeline, and a shadow certificate:
// a CT entry for the organization's sign-in names from a CA it does not use,
// which no cert-manager or SPIRE record sanctions. Those bring a few
// identities of their own (the CI and batch roles, the Vault job, bot and
// operator, the certificate), added only when selected and driven by their
// own random streams, so a configuration without them gives the same bytes
// as before they existed.
//
// Platform. Argo CD deploys each workload on about one weekday in three
// (a Deployment patch in Kubernetes audit, which starts the workload's
// re-learning period in the baseline), each new pod fetching an SVID; SPIRE
// signs every workload's SVID (4h TTL) every two hours; cert-manager renews
// two public certificates (ACME, under OrgDomain, 90 days, renewed after
// 60) and an internal webhook certificate (a cluster CA, a day, renewed
// after 16h) per namespace, and two CT logs record each public one minutes
// after its issuance. These records come from their own stream too.
//
// Lifecycle. Config.Lifecycle adds, on top of the platform, identity kinds
// the four populations lack and the churn of a running platform (see
// lifecycle.go): three Kubernetes controllers listing, watching and
// patching resources all day and two CronJobs (nightly and hourly) acting
// only on their schedule, each from pods whose names carry their cohort, in
// Kubernetes audit; five AI agents' Kong keys calling tool endpoints in
// bursty sessions; Argo CD deploying the controllers, each deploy rolling
// new pods (new names, sometimes a replica more) and the first ones adding
// an action minutes later, within the re-learning period the deploy starts;
// and one platform deploy of a mesh workload in five adding a route of a
// peer it already calls. Its own stream and zero-rate identities keep the
// other records as they are.
//
// Record.Key is the canonical identity id of SPEC §2 that the record names
// (the caller for mesh logs; k8s:sa/default/<ns>/<name> for Vault clients,
// "default" being the Vault decoder's default cluster name), so
// one identity stays on one Kafka partition.
package gen
