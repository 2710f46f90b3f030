// Package cloudaudit owns the decoders of cloud control-plane audit logs:
//
//   - "cloudtrail" (New): AWS CloudTrail, single records and whole
//     {"Records":[…]} log files. It resolves userIdentity to the canonical
//     AWS identities of SPEC §2 and turns STS AssumeRole* calls into
//     issuance events, because role sessions are the credentials AWS
//     workloads actually use.
//   - "gcp_audit" (NewGCPAudit): GCP Cloud Audit Logs, a LogEntry whose
//     protoPayload is a google.cloud.audit.AuditLog. Service accounts are
//     gcp:sa/<email>, people gcp:user/<email>; service-account key creation
//     and the IAM Credentials API's token minting are issuance events.
//   - "azure_activity" (NewAzureActivity): the Azure Activity log (and the
//     resource logs that share its schema), in the diagnostic-settings,
//     REST and Event Hub {"records":[…]} shapes. Service principals are
//     azure:sp/<appId>, users azure:user/<upn>.
//   - "entra_signin" (NewEntraSignIn): Entra ID sign-in logs, above all
//     service-principal and managed-identity sign-ins, with the client
//     credential's key id.
//   - "entra_audit" (NewEntraAudit): Entra ID directory audit logs; adding a
//     secret or certificate to an application or service principal is an
//     issuance event.
//   - "k8s_audit" (NewK8sAudit): Kubernetes audit.k8s.io/v1 Events, alone,
//     in an EventList, in AKS diagnostic records or in EKS CloudWatch Logs
//     batches. Service accounts are k8s:sa/<cluster>/<ns>/<name>; a
//     TokenRequest is an issuance event. Only the final stage of a request
//     is an event (see K8sAuditDecoder).
package cloudaudit
