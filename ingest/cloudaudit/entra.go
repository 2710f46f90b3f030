package cloudaudit

import (
	"strconv"
	"strings"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Formats of the Entra ID (Azure AD) decoders.
const (
	FormatEntraSignIn = "entra_signin"
	FormatEntraAudit  = "entra_audit"
)

// EntraSignInDecoder decodes Entra ID sign-in logs as diagnostic settings
// export them (categories SignInLogs, NonInteractiveUserSignInLogs,
// ServicePrincipalSignInLogs, ManagedIdentitySignInLogs): the sign-in is
// in properties. Service-principal and managed-identity sign-ins are the
// machine identities nhisentry watches; user sign-ins decode too, so that
// a user acting through an application is visible. The zero value is ready
// to use.
type EntraSignInDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewEntraSignIn returns an EntraSignInDecoder with the default limits.
func NewEntraSignIn() *EntraSignInDecoder {
	return &EntraSignInDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*EntraSignInDecoder) Format() string { return FormatEntraSignIn }

type entraSignIn struct {
	Time          string    `json:"time"`
	PEventTime    string    `json:"p_event_time"`
	Category      string    `json:"category"`
	OperationName valueText `json:"operationName"`
	TenantID      string    `json:"tenantId"`
	ResultType    text      `json:"resultType"`
	CallerIP      string    `json:"callerIpAddress"`
	CorrelationID string    `json:"correlationId"`
	Properties    *obj[struct {
		ID                              text `json:"id"`
		CreatedDateTime                 text `json:"createdDateTime"`
		AppID                           text `json:"appId"`
		AppDisplayName                  text `json:"appDisplayName"`
		ServicePrincipalID              text `json:"servicePrincipalId"`
		ServicePrincipalName            text `json:"servicePrincipalName"`
		ServicePrincipalCredentialKeyID text `json:"servicePrincipalCredentialKeyId"`
		ClientCredentialType            text `json:"clientCredentialType"`
		ManagedIdentityType             text `json:"managedIdentityType"`
		UserPrincipalName               text `json:"userPrincipalName"`
		UserDisplayName                 text `json:"userDisplayName"`
		IPAddress                       text `json:"ipAddress"`
		UserAgent                       text `json:"userAgent"`
		ResourceDisplayName             text `json:"resourceDisplayName"`
		ResourceID                      text `json:"resourceId"`
		Status                          obj[struct {
			ErrorCode text `json:"errorCode"`
		}] `json:"status"`
	}] `json:"properties"`
}

// Decode implements ingest.Decoder.
func (d *EntraSignInDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	var s entraSignIn
	if de := ingest.DecodeJSON(FormatEntraSignIn, ingest.Unwrap(rec.Value), ingest.RecordLimit(d.MaxRecordBytes), ingest.DefaultMaxDepth, &s); de != nil {
		return dst, de
	}
	ev, de := s.event(rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func (s *entraSignIn) event(rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if s.Properties == nil {
		return schemas.Event{}, ingest.Errorf(FormatEntraSignIn, ingest.ReasonNotAnEvent, "no properties: not an Entra ID sign-in record")
	}
	if s.Category != "" && !strings.HasSuffix(s.Category, "SignInLogs") {
		return schemas.Event{}, ingest.Errorf(FormatEntraSignIn, ingest.ReasonNotAnEvent, "category %q is not a sign-in log", s.Category)
	}
	p := &s.Properties.V
	t, de := eventTime(FormatEntraSignIn, []string{"properties.createdDateTime", "time", "p_event_time"}, string(p.CreatedDateTime), s.Time, s.PEventTime)
	if de != nil {
		return schemas.Event{}, de
	}
	machine := s.Category == "ServicePrincipalSignInLogs" || s.Category == "ManagedIdentitySignInLogs"
	var id schemas.Identity
	switch upn := string(p.UserPrincipalName); {
	case upn != "" && !machine:
		id = azureUser(upn, string(p.UserDisplayName))
	case p.AppID != "":
		id = azureSP(string(p.AppID), ingest.FirstOf(string(p.ServicePrincipalName), string(p.AppDisplayName)))
	case p.ServicePrincipalID != "":
		// No app id logged: the object id still names the principal.
		id = azureSP(string(p.ServicePrincipalID), string(p.ServicePrincipalName))
	default:
		return schemas.Event{}, ingest.Errorf(FormatEntraSignIn, ingest.ReasonMissingField, "properties has no userPrincipalName, appId or servicePrincipalId")
	}
	var cred schemas.Credential
	if k := string(p.ServicePrincipalCredentialKeyID); k != "" {
		cred = schemas.Credential{ID: strings.ToLower(k), Type: "azure_client_credential"}
	}
	eventID := schemas.HashID(FormatEntraSignIn, rec.Value)
	if p.ID != "" {
		eventID = "entra:" + string(p.ID)
	}
	target := ingest.FirstOf(string(p.ResourceDisplayName), string(p.AppDisplayName))
	action := "entra:signin"
	if target != "" {
		action += ":" + target
	}
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   FormatEntraSignIn,
			Provider: "azure",
			Account:  strings.ToLower(s.TenantID),
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        hostIP(ingest.FirstOf(string(p.IPAddress), s.CallerIP)),
			UserAgent: string(p.UserAgent),
			Session:   s.CorrelationID,
		},
		Action:     action,
		Service:    "entra",
		Target:     schemas.Target{Resource: ingest.FirstOf(string(p.ResourceID), string(p.ResourceDisplayName))},
		Outcome:    signInOutcome(string(p.Status.V.ErrorCode), string(s.ResultType)),
		Provenance: rec.Provenance(),
	}
	if id.Kind == schemas.KindServicePrinc && machine {
		ev.Actor.Workload = string(p.ServicePrincipalName)
	}
	return ev, nil
}

// signInOutcome classifies the sign-in error code (properties.status,
// else resultType): 0 is success; conditional-access blocks and "not
// assigned / not allowed" errors are denied; anything else (bad password
// 50126, locked account 50053, invalid client secret 7000215, expired
// secret 7000222, …) is a failure. resultType can also be the words
// Success/Failure.
func signInOutcome(errorCode, resultType string) schemas.Outcome {
	code := errorCode
	if code == "" {
		code = resultType
	}
	switch strings.ToLower(code) {
	case "", "0", "success", "succeeded":
		return schemas.Outcome{Result: schemas.ResultSuccess}
	case "failure", "failed":
		return schemas.Outcome{Result: schemas.ResultFailure}
	}
	o := schemas.Outcome{Result: schemas.ResultFailure, ErrorCode: code}
	if n, err := strconv.Atoi(code); err == nil {
		switch n {
		case 53000, 53001, 53002, 53003, 53004, 530032, // conditional access
			50105,   // user not assigned to the application
			50097,   // device authentication required
			65001,   // consent not granted
			700016,  // application not found in the tenant
			7000112: // application disabled
			o.Result = schemas.ResultDenied
		}
	}
	return o
}

// EntraAuditDecoder decodes Entra ID directory audit logs (category
// AuditLogs and its siblings as diagnostic settings export them):
// properties.operationName/activityDisplayName, initiatedBy.user or
// initiatedBy.app, targetResources and result. Adding credentials to a
// service principal or an application is an issuance. The zero value is
// ready to use.
type EntraAuditDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewEntraAudit returns an EntraAuditDecoder with the default limits.
func NewEntraAudit() *EntraAuditDecoder {
	return &EntraAuditDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*EntraAuditDecoder) Format() string { return FormatEntraAudit }

type entraAudit struct {
	Time          string    `json:"time"`
	PEventTime    string    `json:"p_event_time"`
	Category      string    `json:"category"`
	OperationName valueText `json:"operationName"`
	TenantID      string    `json:"tenantId"`
	CallerIP      string    `json:"callerIpAddress"`
	IPAddress     string    `json:"ipAddress"`
	CorrelationID string    `json:"correlationId"`
	Identity      text      `json:"identity"` // the initiator's display name
	Properties    *obj[struct {
		ID                  text `json:"id"`
		OperationName       text `json:"operationName"`
		ActivityDisplayName text `json:"activityDisplayName"`
		ActivityDateTime    text `json:"activityDateTime"`
		Result              text `json:"result"`
		ResultReason        text `json:"resultReason"`
		LoggedByService     text `json:"loggedByService"`
		InitiatedBy         obj[struct {
			User obj[struct {
				ID                text `json:"id"`
				DisplayName       text `json:"displayName"`
				UserPrincipalName text `json:"userPrincipalName"`
				IPAddress         text `json:"ipAddress"`
			}] `json:"user"`
			App obj[struct {
				AppID                text `json:"appId"`
				DisplayName          text `json:"displayName"`
				ServicePrincipalID   text `json:"servicePrincipalId"`
				ServicePrincipalName text `json:"servicePrincipalName"`
			}] `json:"app"`
		}] `json:"initiatedBy"`
		TargetResources list[obj[entraTarget]] `json:"targetResources"`
	}] `json:"properties"`
}

type entraTarget struct {
	ID                 text                     `json:"id"`
	DisplayName        text                     `json:"displayName"`
	Type               text                     `json:"type"`
	UserPrincipalName  text                     `json:"userPrincipalName"`
	ModifiedProperties list[obj[entraModified]] `json:"modifiedProperties"`
}

type entraModified struct {
	DisplayName text `json:"displayName"`
	NewValue    text `json:"newValue"`
}

// Decode implements ingest.Decoder.
func (d *EntraAuditDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	var a entraAudit
	if de := ingest.DecodeJSON(FormatEntraAudit, ingest.Unwrap(rec.Value), ingest.RecordLimit(d.MaxRecordBytes), ingest.DefaultMaxDepth, &a); de != nil {
		return dst, de
	}
	ev, de := a.event(rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func (a *entraAudit) event(rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if a.Properties == nil {
		return schemas.Event{}, ingest.Errorf(FormatEntraAudit, ingest.ReasonNotAnEvent, "no properties: not an Entra ID audit record")
	}
	if strings.HasSuffix(a.Category, "SignInLogs") {
		return schemas.Event{}, ingest.Errorf(FormatEntraAudit, ingest.ReasonNotAnEvent, "category %q is a sign-in log (format %s), not an audit log", a.Category, FormatEntraSignIn)
	}
	p := &a.Properties.V
	op := strings.TrimSpace(ingest.FirstOf(string(a.OperationName), string(p.OperationName), string(p.ActivityDisplayName)))
	if op == "" {
		return schemas.Event{}, ingest.Errorf(FormatEntraAudit, ingest.ReasonMissingField, "operationName is missing")
	}
	t, de := eventTime(FormatEntraAudit, []string{"properties.activityDateTime", "time", "p_event_time"}, string(p.ActivityDateTime), a.Time, a.PEventTime)
	if de != nil {
		return schemas.Event{}, de
	}
	user, app := &p.InitiatedBy.V.User.V, &p.InitiatedBy.V.App.V
	ip := hostIP(ingest.FirstOf(string(user.IPAddress), a.CallerIP, a.IPAddress))
	var id schemas.Identity
	switch {
	case user.UserPrincipalName != "":
		id = azureUser(string(user.UserPrincipalName), string(user.DisplayName))
	case app.AppID != "":
		id = azureSP(string(app.AppID), ingest.FirstOf(string(app.ServicePrincipalName), string(app.DisplayName)))
	case app.ServicePrincipalID != "":
		id = azureSP(string(app.ServicePrincipalID), ingest.FirstOf(string(app.ServicePrincipalName), string(app.DisplayName)))
	case user.ID != "":
		id = schemas.Identity{ID: "azure:user-object/" + strings.ToLower(string(user.ID)), Kind: schemas.KindUser, Name: string(user.DisplayName)}
	case a.Identity != "":
		// Only the initiator's display name was logged.
		id = schemas.Identity{ID: "azure:name/" + string(a.Identity), Kind: schemas.KindUnknown, Name: string(a.Identity)}
	default:
		return schemas.Event{}, ingest.Errorf(FormatEntraAudit, ingest.ReasonMissingField, "properties.initiatedBy names no user or app")
	}
	var target *entraTarget
	if len(p.TargetResources) > 0 {
		target = &p.TargetResources[0].V
	}
	eventID := schemas.HashID(FormatEntraAudit, rec.Value)
	if p.ID != "" {
		eventID = "entra:" + string(p.ID)
	}
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   FormatEntraAudit,
			Provider: "azure",
			Account:  strings.ToLower(a.TenantID),
		},
		Identity:   id,
		Actor:      schemas.Actor{IP: ip, Session: a.CorrelationID},
		Action:     "entra:" + op,
		Service:    ingest.FirstOf(string(p.LoggedByService), "entra"),
		Outcome:    auditOutcome(string(p.Result), string(p.ResultReason)),
		Provenance: rec.Provenance(),
	}
	if target != nil {
		ev.Target.Resource = ingest.FirstOf(string(target.UserPrincipalName), string(target.ID), string(target.DisplayName))
		if target.Type != "" && ev.Target.Resource != "" {
			ev.Target.Resource = string(target.Type) + "/" + ev.Target.Resource
		}
	}
	if ev.Outcome.Result == schemas.ResultSuccess && target != nil && isCredentialOp(op) {
		ev.Issuance = credentialIssuance(target, id)
	}
	return ev, nil
}

func auditOutcome(result, reason string) schemas.Outcome {
	switch strings.ToLower(result) {
	case "", "success":
		return schemas.Outcome{Result: schemas.ResultSuccess}
	}
	o := schemas.Outcome{Result: schemas.ResultFailure, ErrorCode: reason}
	l := strings.ToLower(reason)
	if strings.Contains(l, "insufficient privileges") || strings.Contains(l, "authorization") || strings.Contains(l, "forbidden") {
		o.Result = schemas.ResultDenied
	}
	return o
}

// isCredentialOp reports whether an audit operation adds a credential
// (client secret, certificate, federated credential) to an application or
// a service principal.
func isCredentialOp(op string) bool {
	l := strings.ToLower(op)
	return strings.Contains(l, "service principal credentials") && strings.HasPrefix(l, "add") ||
		strings.Contains(l, "certificates and secrets management") ||
		strings.Contains(l, "federated identity credential") && !strings.HasPrefix(l, "delete")
}

// credentialIssuance describes the credential added to target. The key id
// is visible in KeyDescription ("[KeyIdentifier=<id>,KeyType=Password,
// KeyUsage=Verify,DisplayName=…]"); the subject is the application by its
// app id when the record shows it (AppId), else the target object.
func credentialIssuance(target *entraTarget, requester schemas.Identity) *schemas.Issuance {
	is := &schemas.Issuance{
		CredentialType: "azure_client_credential",
		Issuer:         "azure:entra",
		Requester:      requester.ID,
	}
	var appID string
	for _, m := range target.ModifiedProperties {
		v := string(m.V.NewValue)
		switch string(m.V.DisplayName) {
		case "KeyDescription", "KeyIdentifier":
			if k := keyIdentifier(v); k != "" && is.Credential == "" {
				is.Credential = k
			}
			if _, typ, ok := strings.Cut(v, "KeyType="); ok {
				typ, _, _ = strings.Cut(typ, ",")
				setKeyType(is, typ)
			}
		case "KeyType":
			setKeyType(is, strings.Trim(v, `"[] `))
		case "AppId":
			appID = strings.Trim(v, `"[] `)
		}
	}
	switch {
	case isGUID(appID):
		is.Subject = azureSP(appID, "").ID
	case target.ID != "":
		// The directory object id of the application or service principal.
		is.Subject = "azure:object/" + strings.ToLower(string(target.ID))
	}
	return is
}

// setKeyType refines the credential type from Entra's KeyType.
func setKeyType(is *schemas.Issuance, keyType string) {
	switch keyType {
	case "Password":
		is.CredentialType = "azure_client_secret"
	case "AsymmetricX509Cert":
		is.CredentialType = "azure_client_certificate"
	}
}

// keyIdentifier finds KeyIdentifier=<id> in a KeyDescription value.
func keyIdentifier(v string) string {
	_, rest, ok := strings.Cut(v, "KeyIdentifier=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, `,]"\`); i >= 0 {
		rest = rest[:i]
	}
	return strings.ToLower(strings.TrimSpace(rest))
}
