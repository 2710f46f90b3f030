// Package response owns what is done about findings: the Provider seam and
// the guarded automated responses (policy, safety, audit, approvals) that
// revoke or isolate at the identity providers. Its subpackages deliver
// findings (kafkasink, outputs) and adapt each provider's API
// (providers/...).
// Findings are plain schemas.Finding values, so response never imports the
// detectors.
package response
