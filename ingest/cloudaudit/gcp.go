package cloudaudit

import (
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatGCPAudit is the configured name of the GCP Cloud Audit Logs decoder.
const FormatGCPAudit = "gcp_audit"

// auditLogType is the @type of a Cloud Audit Logs protoPayload.
const auditLogType = "type.googleapis.com/google.cloud.audit.AuditLog"

// GCPAuditDecoder decodes one Cloud Logging LogEntry whose protoPayload is
// a google.cloud.audit.AuditLog (Admin Activity, Data Access, System Event
// and Policy Denied logs), as a log sink writes it to Pub/Sub or a file.
// The zero value is ready to use.
type GCPAuditDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewGCPAudit returns a GCPAuditDecoder with the default limits.
func NewGCPAudit() *GCPAuditDecoder {
	return &GCPAuditDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*GCPAuditDecoder) Format() string { return FormatGCPAudit }

type gcpEntry struct {
	InsertID         string                 `json:"insertId"`
	LogName          string                 `json:"logName"`
	Timestamp        string                 `json:"timestamp"`
	ReceiveTimestamp string                 `json:"receiveTimestamp"`
	PEventTime       string                 `json:"p_event_time"` // Panther's copy of the event time
	Resource         obj[gcpResource]       `json:"resource"`
	ProtoPayload     *obj[gcpAuditLog]      `json:"protoPayload"`
	JSONPayload      json.RawMessage        `json:"jsonPayload"`
	TextPayload      json.RawMessage        `json:"textPayload"`
	Operation        obj[struct{ ID text }] `json:"operation"`
}

type gcpResource struct {
	Type   string `json:"type"`
	Labels struct {
		ProjectID   text `json:"project_id"`
		Location    text `json:"location"`
		Region      text `json:"region"`
		Zone        text `json:"zone"`
		ClusterName text `json:"cluster_name"`
	} `json:"labels"`
}

type gcpAuditLog struct {
	Type               string                                     `json:"@type"`
	AtSignType         string                                     `json:"at_sign_type"` // Panther's rename of @type
	ServiceName        text                                       `json:"serviceName"`
	MethodName         text                                       `json:"methodName"`
	ResourceName       text                                       `json:"resourceName"`
	AuthenticationInfo obj[gcpAuthn]                              `json:"authenticationInfo"`
	AuthorizationInfo  list[obj[gcpAuthz]]                        `json:"authorizationInfo"`
	RequestMetadata    obj[gcpRequestMetadata]                    `json:"requestMetadata"`
	Status             obj[gcpStatus]                             `json:"status"`
	ResourceLocation   obj[struct{ CurrentLocations list[text] }] `json:"resourceLocation"`
	Request            obj[gcpRequest]                            `json:"request"`
	Response           obj[gcpResponse]                           `json:"response"`
}

type gcpAuthn struct {
	PrincipalEmail               text                     `json:"principalEmail"`
	PrincipalSubject             text                     `json:"principalSubject"`
	ServiceAccountKeyName        text                     `json:"serviceAccountKeyName"`
	ServiceAccountDelegationInfo list[obj[gcpDelegation]] `json:"serviceAccountDelegationInfo"`
}

type gcpDelegation struct {
	PrincipalSubject    text                               `json:"principalSubject"`
	FirstPartyPrincipal obj[struct{ PrincipalEmail text }] `json:"firstPartyPrincipal"`
}

type gcpAuthz struct {
	Granted    *bool `json:"granted"`
	Permission text  `json:"permission"`
}

type gcpRequestMetadata struct {
	CallerIP                text `json:"callerIp"`
	CallerSuppliedUserAgent text `json:"callerSuppliedUserAgent"`
	RequestAttributes       obj[struct {
		Time text `json:"time"`
	}] `json:"requestAttributes"`
}

type gcpStatus struct {
	Code    text `json:"code"`
	Message text `json:"message"`
}

type gcpRequest struct {
	Name     text `json:"name"`
	Lifetime text `json:"lifetime"`
}

type gcpResponse struct {
	Name            text `json:"name"`
	ValidAfterTime  text `json:"validAfterTime"`
	ValidBeforeTime text `json:"validBeforeTime"`
	KeyType         text `json:"keyType"`
}

// Decode implements ingest.Decoder.
func (d *GCPAuditDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	var e gcpEntry
	if de := ingest.DecodeJSON(FormatGCPAudit, ingest.Unwrap(rec.Value), ingest.RecordLimit(d.MaxRecordBytes), ingest.DefaultMaxDepth, &e); de != nil {
		return dst, de
	}
	ev, de := e.event(rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func (e *gcpEntry) event(rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if e.ProtoPayload == nil {
		if len(e.JSONPayload) > 0 || len(e.TextPayload) > 0 {
			return schemas.Event{}, ingest.Errorf(FormatGCPAudit, ingest.ReasonNotAnEvent, "LogEntry with jsonPayload/textPayload, not an audit log (protoPayload)")
		}
		return schemas.Event{}, ingest.Errorf(FormatGCPAudit, ingest.ReasonNotAnEvent, "no protoPayload: not a Cloud Audit Logs entry")
	}
	p := &e.ProtoPayload.V
	if typ := ingest.FirstOf(p.Type, p.AtSignType); typ != "" && typ != auditLogType {
		return schemas.Event{}, ingest.Errorf(FormatGCPAudit, ingest.ReasonNotAnEvent, "protoPayload @type %q is not %s", typ, auditLogType)
	}
	if p.MethodName == "" {
		return schemas.Event{}, ingest.Errorf(FormatGCPAudit, ingest.ReasonMissingField, "protoPayload.methodName is missing")
	}
	t, de := eventTime(FormatGCPAudit,
		[]string{"timestamp", "protoPayload.requestMetadata.requestAttributes.time", "receiveTimestamp", "p_event_time"},
		e.Timestamp, string(p.RequestMetadata.V.RequestAttributes.V.Time), e.ReceiveTimestamp, e.PEventTime)
	if de != nil {
		return schemas.Event{}, de
	}

	res := &e.Resource.V
	project := string(res.Labels.ProjectID)
	if project == "" {
		project = logNameOwner(e.LogName)
	}
	cluster := string(res.Labels.ClusterName)
	authn := &p.AuthenticationInfo.V
	ip := hostIP(string(p.RequestMetadata.V.CallerIP))

	id, de := gcpIdentity(authn, cluster, ip)
	if de != nil {
		return schemas.Event{}, de
	}
	var cred schemas.Credential
	if keyID := gcpKeyID(string(authn.ServiceAccountKeyName)); keyID != "" {
		cred = schemas.Credential{ID: keyID, Type: "gcp_sa_key"}
	}
	var peer string
	if dl := authn.ServiceAccountDelegationInfo; len(dl) > 0 {
		first := &dl[0].V
		if email := string(first.FirstPartyPrincipal.V.PrincipalEmail); email != "" {
			peer = gcpPrincipal(email, cluster).ID
		} else if sub := string(first.PrincipalSubject); sub != "" {
			peer = gcpSubject(sub, cluster).ID
		}
	}

	region := ingest.FirstOf(string(res.Labels.Location), string(res.Labels.Region), string(res.Labels.Zone))
	if region == "" && len(p.ResourceLocation.V.CurrentLocations) > 0 {
		region = string(p.ResourceLocation.V.CurrentLocations[0])
	}
	eventID := schemas.HashID(FormatGCPAudit, rec.Value)
	if e.InsertID != "" {
		eventID = "gcp:" + e.InsertID
	}
	service := string(p.ServiceName)
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   FormatGCPAudit,
			Provider: "gcp",
			Account:  project,
			Cluster:  cluster,
			Region:   region,
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: string(p.RequestMetadata.V.CallerSuppliedUserAgent),
			Peer:      peer,
		},
		Action:     gcpAction(service, string(p.MethodName)),
		Service:    service,
		Target:     schemas.Target{Resource: string(p.ResourceName)},
		Outcome:    p.outcome(),
		Provenance: rec.Provenance(),
	}
	if ev.Outcome.Result == schemas.ResultSuccess {
		ev.Issuance = p.issuance(t, id, cluster)
	}
	return ev, nil
}

// logNameOwner returns the project of "projects/<p>/logs/…", or the
// "organizations/<n>", "folders/<n>" or "billingAccounts/<n>" that owns an
// organization-level log.
func logNameOwner(logName string) string {
	kind, rest, ok := strings.Cut(logName, "/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	if id == "" {
		return ""
	}
	if kind == "projects" {
		return id
	}
	return kind + "/" + id
}

// gcpIdentity resolves authenticationInfo: the principal email, else the
// principal subject (workload identity federation, a delegation chain
// with no email), else the caller's address.
func gcpIdentity(a *gcpAuthn, cluster, ip string) (schemas.Identity, *ingest.DecodeError) {
	if email := string(a.PrincipalEmail); email != "" {
		return gcpPrincipal(email, cluster), nil
	}
	if sub := string(a.PrincipalSubject); sub != "" {
		return gcpSubject(sub, cluster), nil
	}
	if ip != "" {
		return ingest.IPIdentity(ip), nil
	}
	return schemas.Identity{}, ingest.Errorf(FormatGCPAudit, ingest.ReasonMissingField, "protoPayload.authenticationInfo names no principal and there is no callerIp")
}

// gcpPrincipal maps a principalEmail. Service accounts (user-managed
// *.iam.gserviceaccount.com and Google-managed service agents
// *.gserviceaccount.com) are gcp:sa/<email>; GKE logs Kubernetes user names
// there, which resolve like the Kubernetes audit log's; any other email is
// a human, gcp:user/<email>.
func gcpPrincipal(email, cluster string) schemas.Identity {
	email = strings.ToLower(email)
	if strings.HasPrefix(email, "system:") {
		return k8sUser(clusterOr(cluster), email)
	}
	if strings.HasSuffix(email, ".gserviceaccount.com") {
		return schemas.Identity{ID: "gcp:sa/" + email, Kind: schemas.KindServiceAccount, Name: email}
	}
	return schemas.Identity{ID: "gcp:user/" + email, Kind: schemas.KindUser, Name: email}
}

// gcpSubject maps a principalSubject: "user:x" and "serviceAccount:x" as
// emails, anything else (principal://… of workload or workforce identity
// federation) as an opaque gcp:principal/<subject>.
func gcpSubject(sub, cluster string) schemas.Identity {
	for _, prefix := range [...]string{"user:", "serviceAccount:"} {
		if email, ok := strings.CutPrefix(sub, prefix); ok && email != "" {
			return gcpPrincipal(email, cluster)
		}
	}
	return schemas.Identity{ID: "gcp:principal/" + sub, Kind: schemas.KindUnknown, Name: sub}
}

// gcpKeyID returns the key id of a service-account key resource name
// "//iam.googleapis.com/projects/p/serviceAccounts/sa/keys/<id>".
func gcpKeyID(name string) string {
	_, id, ok := strings.Cut(name, "/keys/")
	if !ok || id == "" || strings.ContainsRune(id, '/') {
		return ""
	}
	return id
}

// gcpSAFromName returns the service-account email of
// "projects/<p>/serviceAccounts/<email>[/keys/<id>]".
func gcpSAFromName(name string) string {
	_, rest, ok := strings.Cut(name, "/serviceAccounts/")
	if !ok {
		return ""
	}
	email, _, _ := strings.Cut(rest, "/")
	if !strings.Contains(email, "@") {
		return "" // a numeric unique id names the account but is not its identity
	}
	return strings.ToLower(email)
}

// gcpAction normalizes serviceName and methodName to
// "<service short name>:<method>", where the service short name is the
// first label of serviceName (iam.googleapis.com → iam) and the method is
// made readable and stable across API styles:
//
//   - gRPC names lose their package, keeping Service.Method or Method:
//     google.iam.admin.v1.CreateServiceAccountKey → iam:CreateServiceAccountKey,
//     google.logging.v2.ConfigServiceV2.UpdateSink → logging:ConfigServiceV2.UpdateSink;
//   - REST names (all lower case) lose the "google" prefix, version labels
//     and a leading repeat of the service: v1.compute.instances.insert →
//     compute:instances.insert, storage.objects.get → storage:objects.get;
//   - GKE's Kubernetes methods become the Kubernetes audit log's actions:
//     io.k8s.core.v1.pods.exec.create → k8s:create:pods/exec.
func gcpAction(service, method string) string {
	short, _, _ := strings.Cut(service, ".")
	if short == "" {
		short = "gcp"
	}
	if rest, ok := strings.CutPrefix(method, "io.k8s."); ok {
		segs := strings.Split(rest, ".")
		for i, s := range segs {
			if isAPIVersion(s) && len(segs)-i >= 3 {
				res := segs[i+1 : len(segs)-1]
				return "k8s:" + segs[len(segs)-1] + ":" + strings.Join(res, "/")
			}
		}
		return short + ":" + method
	}
	segs := strings.Split(method, ".")
	for i, s := range segs {
		if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
			return short + ":" + strings.Join(segs[i:], ".")
		}
	}
	out := segs[:0:0]
	for i, s := range segs {
		if s == "google" && i == 0 || isAPIVersion(s) || s == short && len(out) == 0 {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return short + ":" + method
	}
	return short + ":" + strings.Join(out, ".")
}

// isAPIVersion matches v1, v2beta1, v1alpha3.
func isAPIVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] < '0' || s[1] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// gRPC canonical codes that name authorization failures.
const (
	grpcPermissionDenied = 7
	grpcUnauthenticated  = 16
)

var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// outcome classifies status.code (a google.rpc.Code): absent or 0 is
// success, PERMISSION_DENIED and UNAUTHENTICATED are denied, anything else
// a failure. An authorizationInfo entry with granted=false is a denial
// even when the status is empty (Policy Denied and some Data Access logs).
func (p *gcpAuditLog) outcome() schemas.Outcome {
	code := 0
	if c := string(p.Status.V.Code); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			n = 2 // UNKNOWN
		}
		code = n
	}
	o := schemas.Outcome{Result: schemas.ResultSuccess}
	if code != 0 {
		o.ErrorCode = strconv.Itoa(code)
		if code < len(grpcCodeNames) {
			o.ErrorCode = grpcCodeNames[code]
		}
		o.Result = schemas.ResultFailure
		if code == grpcPermissionDenied || code == grpcUnauthenticated {
			o.Result = schemas.ResultDenied
		}
		return o
	}
	for _, a := range p.AuthorizationInfo {
		if a.V.Granted != nil && !*a.V.Granted {
			return schemas.Outcome{Result: schemas.ResultDenied, ErrorCode: grpcCodeNames[grpcPermissionDenied]}
		}
	}
	return o
}

// issuance describes the credential a successful call minted:
// CreateServiceAccountKey (a long-lived key, named in the response) and
// the IAM Credentials API's short-lived tokens and signatures
// (GenerateAccessToken, GenerateIdToken, SignJwt, SignBlob), whose subject
// is the service account named in the request.
func (p *gcpAuditLog) issuance(t time.Time, requester schemas.Identity, cluster string) *schemas.Issuance {
	method := string(p.MethodName)
	last := method[strings.LastIndexByte(method, '.')+1:]
	var is schemas.Issuance
	switch last {
	case "CreateServiceAccountKey":
		is.CredentialType = "gcp_sa_key"
		is.Credential = gcpKeyID(string(p.Response.V.Name))
		if after, err := parseTime(string(p.Response.V.ValidAfterTime)); err == nil {
			if before, err := parseTime(string(p.Response.V.ValidBeforeTime)); err == nil && before.After(after) && before.Year() < 9999 {
				is.TTLSeconds = int64(before.Sub(after) / time.Second)
			}
		}
	case "GenerateAccessToken":
		is.CredentialType = "gcp_access_token"
		is.TTLSeconds = durationSeconds(string(p.Request.V.Lifetime))
		if is.TTLSeconds == 0 {
			is.TTLSeconds = 3600 // the API's default lifetime
		}
	case "GenerateIdToken":
		is.CredentialType = "gcp_id_token"
	case "SignJwt":
		is.CredentialType = "gcp_signed_jwt"
	case "SignBlob":
		is.CredentialType = "gcp_signed_blob"
	default:
		return nil
	}
	is.Issuer = "gcp:iam"
	is.Requester = requester.ID
	for _, name := range [...]string{string(p.Response.V.Name), string(p.Request.V.Name), string(p.ResourceName)} {
		if email := gcpSAFromName(name); email != "" {
			is.Subject = gcpPrincipal(email, cluster).ID
			break
		}
	}
	return &is
}

// durationSeconds parses a protobuf Duration in JSON ("3600s", "1.5s").
func durationSeconds(s string) int64 {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}
