package cloudaudit

import (
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatAzureActivity is the configured name of the Azure Activity log
// decoder.
const FormatAzureActivity = "azure_activity"

// AzureActivityDecoder decodes Azure Activity log records (and the Azure
// Monitor resource logs that share their schema, such as Storage
// StorageRead/StorageWrite/StorageDelete). It accepts the three shapes they
// are exported in:
//
//   - the diagnostic-settings record (Event Hub, storage, Log Analytics
//     export): time, operationName, category, resultType, resultSignature,
//     callerIpAddress, correlationId, identity{authorization, claims},
//     resourceId;
//   - the Activity Log REST/"az monitor activity-log" shape: eventTimestamp,
//     operationName{value}, status{value}, subStatus, caller, claims,
//     httpRequest{clientIpAddress}, subscriptionId, eventDataId;
//   - an Event Hub batch {"records":[…]} of either, every record appended.
//
// The zero value is ready to use.
type AzureActivityDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewAzureActivity returns an AzureActivityDecoder with the default limits.
func NewAzureActivity() *AzureActivityDecoder {
	return &AzureActivityDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*AzureActivityDecoder) Format() string { return FormatAzureActivity }

type azureActivityDoc struct {
	azureActivity
	Records []json.RawMessage `json:"records"`
}

type azureActivity struct {
	Time            string    `json:"time"`
	EventTimestamp  string    `json:"eventTimestamp"`
	PEventTime      string    `json:"p_event_time"`
	ResourceID      string    `json:"resourceId"`
	OperationName   valueText `json:"operationName"`
	Category        valueText `json:"category"`
	ResultType      text      `json:"resultType"`
	ResultSignature text      `json:"resultSignature"`
	Status          valueText `json:"status"`
	SubStatus       valueText `json:"subStatus"`
	StatusCode      text      `json:"statusCode"` // resource logs (Storage)
	DurationMs      text      `json:"durationMs"`
	Caller          string    `json:"caller"`
	CallerIP        string    `json:"callerIpAddress"`
	HTTPRequest     obj[struct {
		ClientIPAddress string `json:"clientIpAddress"`
	}] `json:"httpRequest"`
	CorrelationID  string                  `json:"correlationId"`
	EventDataID    string                  `json:"eventDataId"`
	SubscriptionID string                  `json:"subscriptionId"`
	TenantID       string                  `json:"tenantId"`
	Location       string                  `json:"location"`
	Identity       obj[azureIdentityBlock] `json:"identity"`
	Claims         map[string]text         `json:"claims"` // REST shape
	Properties     obj[struct {
		UserAgentHeader text `json:"userAgentHeader"`
		AccountName     text `json:"accountName"`
		ServerLatencyMs text `json:"serverLatencyMs"`
	}] `json:"properties"`
}

type azureIdentityBlock struct {
	Type          text            `json:"type"`      // Storage: SAS, AccountKey, OAuth
	TokenHash     text            `json:"tokenHash"` // Storage: "key1(<sha256 of the SAS>)"
	Claims        map[string]text `json:"claims"`
	Authorization obj[struct {
		Evidence obj[struct {
			PrincipalID   text `json:"principalId"`
			PrincipalType text `json:"principalType"`
		}] `json:"evidence"`
	}] `json:"authorization"`
}

// The claim URIs Azure logs for a caller.
const (
	claimObjectID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	claimUPN      = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
	claimEmail    = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	claimName     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
)

// Decode implements ingest.Decoder.
func (d *AzureActivityDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	var doc azureActivityDoc
	lim := ingest.RecordLimit(d.MaxRecordBytes)
	raw := ingest.Unwrap(rec.Value)
	if de := ingest.DecodeJSON(FormatAzureActivity, raw, lim, ingest.DefaultMaxDepth, &doc); de != nil {
		return dst, de
	}
	if doc.Records == nil {
		ev, de := doc.azureActivity.event(rec, "")
		if de != nil {
			return dst, de
		}
		return append(dst, ev), nil
	}
	n := len(dst)
	for i, r := range doc.Records {
		var a azureActivity
		where := "records[" + strconv.Itoa(i) + "]"
		if de := ingest.DecodeJSON(FormatAzureActivity, r, lim, ingest.DefaultMaxDepth, &a); de != nil {
			de.Detail = where + ": " + de.Detail
			return dst[:n], de
		}
		ev, de := a.event(rec, where)
		if de != nil {
			de.Detail = where + ": " + de.Detail
			return dst[:n], de
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

func (a *azureActivity) event(rec ingest.Record, at string) (schemas.Event, *ingest.DecodeError) {
	if a.OperationName == "" {
		if a.Time == "" && a.EventTimestamp == "" {
			return schemas.Event{}, ingest.Errorf(FormatAzureActivity, ingest.ReasonNotAnEvent, "no operationName or time: not an Azure Activity log record")
		}
		return schemas.Event{}, ingest.Errorf(FormatAzureActivity, ingest.ReasonMissingField, "operationName is missing")
	}
	t, de := eventTime(FormatAzureActivity, []string{"time", "eventTimestamp", "p_event_time"}, a.Time, a.EventTimestamp, a.PEventTime)
	if de != nil {
		return schemas.Event{}, de
	}
	ip := hostIP(ingest.FirstOf(a.CallerIP, a.HTTPRequest.V.ClientIPAddress))
	id, cred, de := a.identity(ip)
	if de != nil {
		return schemas.Event{}, de
	}
	account := strings.ToLower(ingest.FirstOf(a.SubscriptionID, azureSubscription(a.ResourceID)))
	if account == "" {
		account = strings.ToLower(a.TenantID)
	}
	var eventID string
	switch {
	case a.EventDataID != "":
		eventID = "azure:" + a.EventDataID
	default:
		// correlationId is shared by every record of one operation (its
		// start, its end, the calls it made): not an event id.
		eventID = schemas.HashID(FormatAzureActivity, rec.Value)
		if at != "" {
			eventID += "/" + at
		}
	}
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   FormatAzureActivity,
			Provider: "azure",
			Account:  account,
			Region:   a.Location,
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: string(a.Properties.V.UserAgentHeader),
		},
		// Azure writes the same operation as Microsoft.KeyVault/vaults/write,
		// microsoft.keyvault/vaults/write or MICROSOFT.KEYVAULT/VAULTS/WRITE
		// depending on the export path; it is case-insensitive, so the
		// action is lower-cased to stay one value for the baselines.
		Action:     "azure:" + strings.ToLower(string(a.OperationName)),
		Service:    strings.ToLower(azureProvider(string(a.OperationName))),
		Target:     schemas.Target{Resource: a.ResourceID},
		Outcome:    a.outcome(),
		Provenance: rec.Provenance(),
	}
	if ms, err := strconv.ParseFloat(string(ingest.FirstOf(string(a.DurationMs), string(a.Properties.V.ServerLatencyMs))), 64); err == nil && ms >= 0 && ms < 1e12 {
		ev.DurationMS = ms
	}
	return ev, nil
}

// identity resolves the caller, most specific first:
//
//  1. claims with a UPN (or an email address) → azure:user/<upn>;
//  2. claims with an appid and no UPN → azure:sp/<appid> (a user's token
//     also carries the appid of the client they used, so the UPN wins);
//  3. caller: a GUID is a service principal, an address with '@' a user;
//  4. identity.authorization.evidence of a service principal →
//     azure:sp/<objectId> (the object id when nothing names the app);
//  5. Storage shared-key and SAS access → azure:storagekey/<account>/<key>,
//     the storage key that signed the request;
//  6. a claim that is a bare name (Azure's own services such as
//     "Microsoft.Advisor") → azure:service/<name>;
//  7. the caller's address.
func (a *azureActivity) identity(ip string) (schemas.Identity, schemas.Credential, *ingest.DecodeError) {
	claims := a.Identity.V.Claims
	if claims == nil {
		claims = a.Claims
	}
	name := string(claims["name"])
	if name == "" {
		name = string(claims[claimName])
	}
	upn := ingest.FirstOf(string(claims[claimUPN]), string(claims["upn"]))
	email := string(claims[claimEmail])
	appID := string(claims["appid"])
	switch {
	case upn != "":
		return azureUser(upn, name), schemas.Credential{}, nil
	case strings.Contains(email, "@"):
		return azureUser(email, name), schemas.Credential{}, nil
	case appID != "":
		return azureSP(appID, name), schemas.Credential{}, nil
	case isGUID(a.Caller):
		return azureSP(a.Caller, ""), schemas.Credential{}, nil
	case strings.Contains(a.Caller, "@"):
		return azureUser(a.Caller, ""), schemas.Credential{}, nil
	}
	if ev := &a.Identity.V.Authorization.V.Evidence.V; ev.PrincipalID != "" && strings.EqualFold(string(ev.PrincipalType), "ServicePrincipal") {
		return azureSP(string(ev.PrincipalID), ""), schemas.Credential{}, nil
	}
	switch typ := string(a.Identity.V.Type); typ {
	case "SAS", "AccountKey":
		key, _, _ := strings.Cut(string(a.Identity.V.TokenHash), "(")
		acct := string(a.Properties.V.AccountName)
		if key != "" && acct != "" {
			id := schemas.Identity{ID: "azure:storagekey/" + acct + "/" + key, Kind: schemas.KindAPIKey, Name: acct + "/" + key}
			// The token hash is a SHA-256 of the SAS token: a fingerprint
			// that tells SAS tokens of one key apart, not the secret.
			return id, schemas.Credential{ID: string(a.Identity.V.TokenHash), Type: "azure_storage_" + strings.ToLower(typ)}, nil
		}
	}
	if email != "" {
		return schemas.Identity{ID: "azure:service/" + email, Kind: schemas.KindUnknown, Name: email}, schemas.Credential{}, nil
	}
	if a.Caller != "" {
		return schemas.Identity{ID: "azure:caller/" + a.Caller, Kind: schemas.KindUnknown, Name: a.Caller}, schemas.Credential{}, nil
	}
	if ip != "" {
		return ingest.IPIdentity(ip), schemas.Credential{}, nil
	}
	return schemas.Identity{}, schemas.Credential{}, ingest.Errorf(FormatAzureActivity, ingest.ReasonMissingField, "no caller, claims, identity or callerIpAddress to identify the caller")
}

// outcome classifies resultType/status with resultSignature/subStatus and,
// for resource logs, statusCode: a failure whose signature is 401/403,
// Forbidden, Unauthorized or AuthorizationFailed is denied; Failed,
// Failure and any status of 400 or more otherwise a failure; Success,
// Succeeded, Started, Accepted and Active are successes.
func (a *azureActivity) outcome() schemas.Outcome {
	result := strings.ToLower(ingest.FirstOf(string(a.ResultType), string(a.Status)))
	sig := ingest.FirstOf(string(a.ResultSignature), string(a.SubStatus))
	o := schemas.Outcome{Result: schemas.ResultSuccess}
	status, ok := atoiOK(string(a.StatusCode))
	if !ok {
		status, ok = atoiOK(sig)
	}
	if ok && status >= 100 && status <= 999 {
		o.Status = status
	}
	lsig := strings.ToLower(sig)
	failed := result == "failed" || result == "failure" || o.Status >= 400
	switch {
	case !failed:
	case o.Status == 401 || o.Status == 403, strings.Contains(lsig, "forbidden"),
		strings.Contains(lsig, "unauthorized"), strings.Contains(lsig, "authorizationfailed"):
		o.Result = schemas.ResultDenied
	default:
		o.Result = schemas.ResultFailure
	}
	if failed && sig != "" && sig != strconv.Itoa(o.Status) {
		o.ErrorCode = sig
	}
	return o
}

// azureSubscription returns the subscription id of a resource id
// "/subscriptions/<id>/…", lower-cased.
func azureSubscription(resourceID string) string {
	const prefix = "/subscriptions/"
	if len(resourceID) < len(prefix) || !strings.EqualFold(resourceID[:len(prefix)], prefix) {
		return ""
	}
	id, _, _ := strings.Cut(resourceID[len(prefix):], "/")
	return strings.ToLower(id)
}

// azureProvider returns the resource provider of an operation name
// ("Microsoft.Authorization/roleAssignments/write" → Microsoft.Authorization),
// or "" for names without one (Storage's GetBlob).
func azureProvider(op string) string {
	p, _, ok := strings.Cut(op, "/")
	if !ok {
		return ""
	}
	return p
}
