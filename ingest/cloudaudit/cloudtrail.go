package cloudaudit

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Format is the configured name of the AWS CloudTrail decoder.
const Format = "cloudtrail"

// maxSession is the longest session STS AssumeRole* grants.
const maxSession = 12 * time.Hour

// Decoder decodes AWS CloudTrail: a record holds either one CloudTrail event
// (as EventBridge and CloudWatch Logs deliver them) or a whole log file
// {"Records":[…]} (as S3 delivery does), of which every event is appended.
// The zero value is ready to use; New returns one with the defaults spelled
// out.
type Decoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes. New sets the inflation bound instead: a
	// log file delivered whole from S3 is many events and often several MiB
	// once gunzipped, while one event is at most 256 KiB (AWS's own limit).
	MaxRecordBytes int
}

// New returns a Decoder whose record limit admits whole S3 log files.
func New() *Decoder { return &Decoder{MaxRecordBytes: ingest.DefaultMaxInflatedBytes} }

// Format implements ingest.Decoder.
func (*Decoder) Format() string { return Format }

// document is a single event or a log file; Records is nil for the former.
type document struct {
	trailEvent
	Records []trailEvent `json:"Records"`
}

// trailEvent holds the fields of a CloudTrail event that nhisentry uses.
// requestParameters and responseElements differ per API and can be large:
// they stay raw and only the few values needed are parsed from them.
type trailEvent struct {
	EventTime          string          `json:"eventTime"`
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	EventID            string          `json:"eventID"`
	AWSRegion          string          `json:"awsRegion"`
	SourceIPAddress    string          `json:"sourceIPAddress"`
	UserAgent          string          `json:"userAgent"`
	ErrorCode          string          `json:"errorCode"`
	ErrorMessage       string          `json:"errorMessage"`
	RecipientAccountID string          `json:"recipientAccountId"`
	UserIdentity       *userIdentity   `json:"userIdentity"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
	Resources          []resource      `json:"resources"`
}

type resource struct {
	ARN string `json:"ARN"`
}

type userIdentity struct {
	Type             string `json:"type"`
	PrincipalID      string `json:"principalId"`
	ARN              string `json:"arn"`
	AccountID        string `json:"accountId"`
	AccessKeyID      string `json:"accessKeyId"`
	UserName         string `json:"userName"`
	InvokedBy        string `json:"invokedBy"`
	IdentityProvider string `json:"identityProvider"`
	SessionContext   struct {
		Attributes struct {
			CreationDate string `json:"creationDate"`
		} `json:"attributes"`
		SessionIssuer struct {
			ARN string `json:"arn"`
		} `json:"sessionIssuer"`
	} `json:"sessionContext"`
}

// requestParameters are the values read from requestParameters: the
// target of the call when resources is absent, and the STS request.
type requestParameters struct {
	RoleArn         ingest.LenientString      `json:"roleArn"`
	PolicyArn       ingest.LenientString      `json:"policyArn"`
	BucketName      ingest.LenientString      `json:"bucketName"`
	Key             ingest.LenientString      `json:"key"`
	SecretID        ingest.LenientString      `json:"secretId"`
	KeyID           ingest.LenientString      `json:"keyId"`
	FunctionName    ingest.LenientString      `json:"functionName"`
	RoleName        ingest.LenientString      `json:"roleName"`
	UserName        ingest.LenientString      `json:"userName"`
	GroupName       ingest.LenientString      `json:"groupName"`
	DurationSeconds ingest.LenientIntOrString `json:"durationSeconds"`
}

// responseElements are the values read from responseElements.
type responseElements struct {
	Credentials struct {
		AccessKeyID ingest.LenientString `json:"accessKeyId"`
		Expiration  ingest.LenientString `json:"expiration"`
	} `json:"credentials"`
	AssumedRoleUser struct {
		ARN ingest.LenientString `json:"arn"`
	} `json:"assumedRoleUser"`
	ConsoleLogin ingest.LenientString `json:"ConsoleLogin"`
}

// Decode implements ingest.Decoder.
func (d *Decoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	var doc document
	if de := ingest.DecodeJSON(Format, rec.Value, limit, ingest.DefaultMaxDepth, &doc); de != nil {
		return dst, de
	}
	if doc.Records == nil {
		ev, de := doc.trailEvent.event(rec, "")
		if de != nil {
			return dst, de
		}
		return append(dst, ev), nil
	}
	// A log file is one message: all of it or none of it goes on, so that a
	// dead letter holds the whole file and a replay never duplicates half.
	n := len(dst)
	fileID := ""
	for i := range doc.Records {
		if doc.Records[i].EventID == "" && fileID == "" {
			fileID = schemas.HashID(Format, rec.Value)
		}
		ev, de := doc.Records[i].event(rec, fileID+"/"+strconv.Itoa(i))
		if de != nil {
			de.Detail = "Records[" + strconv.Itoa(i) + "]: " + de.Detail
			return dst[:n], de
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

// event normalizes one CloudTrail event. fallbackID is the id of an event
// without eventID inside a file; "" means hash the record.
func (r *trailEvent) event(rec ingest.Record, fallbackID string) (schemas.Event, *ingest.DecodeError) {
	if r.EventTime == "" && r.EventName == "" && r.UserIdentity == nil {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonNotAnEvent, "no eventTime, eventName or userIdentity: not a CloudTrail event")
	}
	if r.EventTime == "" {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "eventTime is missing")
	}
	t, err := parseTime(r.EventTime)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonBadField, "eventTime: %v", err)
	}
	if r.EventName == "" {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "eventName is missing")
	}
	if r.UserIdentity == nil {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "userIdentity is missing")
	}

	account := ingest.FirstOf(r.RecipientAccountID, r.UserIdentity.AccountID)
	var params requestParameters
	if len(r.Resources) == 0 || r.isAssumeRole() {
		// Not a JSON object (some producers stringify it): no parameters.
		_ = json.Unmarshal(r.RequestParameters, &params)
	}
	var resp responseElements
	if r.isAssumeRole() || r.EventName == "ConsoleLogin" {
		_ = json.Unmarshal(r.ResponseElements, &resp)
	}

	id, session, de := r.identity(&params, &resp)
	if de != nil {
		return schemas.Event{}, de
	}
	cred, de := r.credential()
	if de != nil {
		return schemas.Event{}, de
	}

	eventID := r.EventID
	switch {
	case eventID != "":
	case fallbackID != "":
		eventID = fallbackID
	default:
		eventID = schemas.HashID(Format, rec.Value)
	}
	var ip string
	if _, err := netip.ParseAddr(r.SourceIPAddress); err == nil {
		ip = r.SourceIPAddress // else a service name such as "ec2.amazonaws.com"
	}
	action := r.EventName
	if prefix, _, ok := strings.Cut(r.EventSource, "."); ok {
		action = prefix + ":" + r.EventName
	}

	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   Format,
			Provider: "aws",
			Account:  account,
			Region:   r.AWSRegion,
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: r.UserAgent,
			Session:   session,
		},
		Action:     action,
		Service:    r.EventSource,
		Target:     schemas.Target{Resource: r.resource(&params, account)},
		Outcome:    r.outcome(&resp),
		Provenance: rec.Provenance(),
	}
	if r.isAssumeRole() && r.ErrorCode == "" {
		ev.Issuance = r.issuance(t, id, &params, &resp)
	}
	return ev, nil
}

func (r *trailEvent) isAssumeRole() bool {
	return r.EventSource == "sts.amazonaws.com" && strings.HasPrefix(r.EventName, "AssumeRole")
}

// identity resolves userIdentity to the canonical identity and the session
// name (SPEC §2: the role is the identity, the session is context).
func (r *trailEvent) identity(params *requestParameters, resp *responseElements) (schemas.Identity, string, *ingest.DecodeError) {
	ui := r.UserIdentity
	account := ingest.FirstOf(ui.AccountID, r.RecipientAccountID)
	switch ui.Type {
	case "AssumedRole":
		// The session issuer is the role itself; the ARN carries the session.
		_, session, _ := ingest.AWSIdentity(ui.ARN)
		if session == "" {
			_, session, _ = strings.Cut(ui.PrincipalID, ":")
		}
		if id, _, err := ingest.AWSIdentity(ui.SessionContext.SessionIssuer.ARN); err == nil {
			return id, session, nil
		}
	case "Root":
		if ui.ARN == "" && account != "" {
			return schemas.Identity{ID: "aws:root/" + account, Kind: schemas.KindUser, Name: "root"}, "", nil
		}
	case "IAMUser":
		if ui.ARN == "" && ui.UserName != "" && account != "" {
			return schemas.Identity{ID: "aws:user/" + account + "/" + ui.UserName, Kind: schemas.KindUser, Name: ui.UserName}, "", nil
		}
	case "AWSService":
		if svc := ingest.FirstOf(ui.InvokedBy, ui.PrincipalID); svc != "" {
			return schemas.Identity{ID: "aws:service/" + svc, Kind: schemas.KindUnknown, Name: svc}, "", nil
		}
	case "AWSAccount":
		// A principal of another account; CloudTrail names only the
		// account and an opaque principal id.
		if ui.AccountID != "" {
			return schemas.Identity{ID: "aws:account/" + ui.AccountID, Kind: schemas.KindUnknown, Name: ui.PrincipalID}, "", nil
		}
	case "WebIdentityUser", "SAMLUser":
		// The federated subject acts as the role it assumes: resolve to the
		// role when this event shows it (AssumeRoleWith*), else name the
		// subject by its identity provider.
		for _, arn := range [...]string{string(resp.AssumedRoleUser.ARN), string(params.RoleArn)} {
			if id, session, err := ingest.AWSIdentity(arn); err == nil {
				return id, session, nil
			}
		}
		if ui.UserName != "" {
			scheme := "aws:webidentity/"
			if ui.Type == "SAMLUser" {
				scheme = "aws:saml/"
			}
			return schemas.Identity{ID: scheme + ui.IdentityProvider + "/" + ui.UserName, Kind: schemas.KindUser, Name: ui.UserName}, "", nil
		}
	}
	id, session, err := ingest.AWSIdentity(ui.ARN)
	if err == nil {
		return id, session, nil
	}
	// Last resort: the opaque principal id is stable per principal even
	// when nothing else is logged.
	if principal, session, _ := strings.Cut(ui.PrincipalID, ":"); principal != "" && account != "" {
		return schemas.Identity{ID: "aws:principal/" + account + "/" + principal, Kind: schemas.KindUnknown}, session, nil
	}
	if ui.ARN != "" {
		return schemas.Identity{}, "", ingest.Errorf(Format, ingest.ReasonBadField, "userIdentity.arn: %v", err)
	}
	return schemas.Identity{}, "", ingest.Errorf(Format, ingest.ReasonMissingField, "userIdentity of type %q names no principal", ui.Type)
}

// credential is the access key the caller signed with. STS keys (ASIA…)
// are session credentials; their session start is when they were issued.
func (r *trailEvent) credential() (schemas.Credential, *ingest.DecodeError) {
	ui := r.UserIdentity
	c := schemas.Credential{ID: ui.AccessKeyID, Type: accessKeyType(ui.AccessKeyID)}
	if c.Type == "aws_sts" && ui.SessionContext.Attributes.CreationDate != "" {
		t, err := parseTime(ui.SessionContext.Attributes.CreationDate)
		if err != nil {
			return c, ingest.Errorf(Format, ingest.ReasonBadField, "userIdentity.sessionContext.attributes.creationDate: %v", err)
		}
		c.IssuedAt = schemas.At(t)
	}
	return c, nil
}

func accessKeyType(id string) string {
	switch {
	case strings.HasPrefix(id, "AKIA"):
		return "aws_access_key"
	case strings.HasPrefix(id, "ASIA"):
		return "aws_sts"
	}
	return ""
}

// resource is the ARN the call acted on: resources[0] when CloudTrail lists
// it, else the best guess from the request parameters of common APIs.
func (r *trailEvent) resource(p *requestParameters, account string) string {
	if len(r.Resources) > 0 && r.Resources[0].ARN != "" {
		return r.Resources[0].ARN
	}
	switch {
	case p.RoleArn != "":
		return string(p.RoleArn)
	case p.PolicyArn != "":
		return string(p.PolicyArn)
	case p.BucketName != "" && p.Key != "":
		return "arn:aws:s3:::" + string(p.BucketName) + "/" + string(p.Key)
	case p.BucketName != "":
		return "arn:aws:s3:::" + string(p.BucketName)
	case p.SecretID != "":
		return string(p.SecretID)
	case p.KeyID != "":
		return string(p.KeyID)
	case p.FunctionName != "":
		return string(p.FunctionName)
	}
	if account == "" || r.EventSource != "iam.amazonaws.com" {
		return ""
	}
	switch {
	case p.RoleName != "":
		return "arn:aws:iam::" + account + ":role/" + string(p.RoleName)
	case p.UserName != "":
		return "arn:aws:iam::" + account + ":user/" + string(p.UserName)
	case p.GroupName != "":
		return "arn:aws:iam::" + account + ":group/" + string(p.GroupName)
	}
	return ""
}

// outcome classifies errorCode. Authorization failures are "denied" because
// privilege probing shows as a burst of them; any other error is "failure".
// A console sign-in failure has no errorCode, only errorMessage.
func (r *trailEvent) outcome(resp *responseElements) schemas.Outcome {
	code := r.ErrorCode
	switch {
	case code == "AccessDenied", code == "AccessDeniedException",
		code == "UnauthorizedOperation", code == "Client.UnauthorizedOperation",
		strings.Contains(code, "Unauthorized"), strings.Contains(code, "Forbidden"),
		strings.Contains(code, "AccessDenied"):
		return schemas.Outcome{Result: schemas.ResultDenied, ErrorCode: code}
	case code != "", r.ErrorMessage != "", resp.ConsoleLogin == "Failure":
		return schemas.Outcome{Result: schemas.ResultFailure, ErrorCode: code}
	}
	return schemas.Outcome{Result: schemas.ResultSuccess}
}

// issuance describes the role session an AssumeRole* call minted.
func (r *trailEvent) issuance(t time.Time, requester schemas.Identity, p *requestParameters, resp *responseElements) *schemas.Issuance {
	is := &schemas.Issuance{
		Credential:     string(resp.Credentials.AccessKeyID),
		CredentialType: "aws_sts",
		Issuer:         "aws:sts",
		Requester:      requester.ID,
	}
	for _, arn := range [...]string{string(resp.AssumedRoleUser.ARN), string(p.RoleArn)} {
		if id, _, err := ingest.AWSIdentity(arn); err == nil {
			is.Subject = id.ID
			break
		}
	}
	if is.Credential == "" && is.Subject == "" {
		return nil // a failed or truncated call: nothing was minted that we can name
	}
	// STS caps an AssumeRole* session at 12 hours: an expiration beyond
	// that (or before the call) is a broken record, not a long session.
	if exp, err := parseExpiration(string(resp.Credentials.Expiration)); err == nil && exp.After(t) && exp.Sub(t) <= maxSession {
		is.TTLSeconds = int64(exp.Sub(t) / time.Second)
	} else if p.DurationSeconds > 0 {
		is.TTLSeconds = int64(p.DurationSeconds)
	}
	return is
}

// parseTime parses eventTime: RFC 3339 as CloudTrail writes it, or the
// "2006-01-02 15:04:05[.frac][Z]" form that log pipelines (Athena, SIEMs)
// rewrite it to; a time without a zone is UTC, as CloudTrail's always is.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t, nil
	}
	for _, layout := range [...]string{"2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05"} {
		if t, err2 := time.Parse(layout, s); err2 == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// parseExpiration parses STS credentials.expiration, which CloudTrail logs
// as "Oct 2, 2019, 11:12:29 PM" (UTC) or RFC 3339.
func parseExpiration(s string) (time.Time, error) {
	if t, err := time.Parse("Jan 2, 2006, 3:04:05 PM", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
