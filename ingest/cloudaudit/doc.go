// Package cloudaudit owns the decoders of cloud control-plane audit logs:
// today AWS CloudTrail (format "cloudtrail"), both single records and whole
// {"Records":[…]} log files. It resolves CloudTrail's userIdentity to the
// canonical AWS identities of SPEC §2 and turns STS AssumeRole* calls into
// issuance events, because role sessions are the credentials AWS workloads
// actually use.
package cloudaudit
