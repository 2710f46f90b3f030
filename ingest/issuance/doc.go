// Package issuance owns the decoders of credential-issuer logs, each an
// ingest.Decoder with its own format name:
//
//   - "vault_audit" (New): the HashiCorp Vault file audit device. Every
//     Vault request is an event of the identity that made it; token
//     creation, logins and PKI certificate issuance also carry the Issuance
//     fields.
//   - "certmanager" (NewCertManager): cert-manager controller logs, klog
//     text or JSON. CertificateRequest/Certificate issuance steps are events
//     of the controller's service account, k8s:sa/<cluster>/cert-manager/
//     cert-manager; klog's missing year comes from the message, the Year
//     field or the Kafka record time, never the clock.
//   - "spire_server" (NewSPIREServer): SPIRE logs, logrus text or JSON. SVID
//     signing and agent attestation are events of the requester (caller or
//     agent SPIFFE id); agent lines that show a workload receiving an SVID
//     are issuance events seen by the agent.
//   - "ct_certstream" (NewCTCertstream): Certificate Transparency entries
//     as certstream-server JSON; the identity is the certificate,
//     cert:<issuer CN or O>/<serial>.
//   - "github_oidc" (NewGitHubOIDC): GitHub Actions OIDC ID tokens, as
//     claims JSON or the compact JWT, decoded without verification and
//     never copied. The identity is the token's sub claim prefixed with
//     "github:", e.g. github:repo:octo/app:ref:refs/heads/main or
//     github:repo:octo/app:environment:prod, kind workload: sub is exactly
//     what a cloud role's trust policy matches, so it is the identity a CI
//     role maps to; the triggering actor is the requester,
//     github:actor/<login>.
//
// Issuance events carry the Issuance struct (issued credential id, type,
// subject, SANs, issuer, TTL, requester) and, where known, the issued
// credential's IssuedAt/ExpiresAt in Credential, so that a later stage can
// link use of a credential to where and to whom it was minted. Certificate
// serials from these decoders are lower-case hex without separators or
// leading zeros.
package issuance
