package gateway

import (
	"strconv"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// APIGatewayFormat is the configured name of the AWS API Gateway access-log
// decoder.
const APIGatewayFormat = "apigateway"

// APIGatewayDecoder decodes AWS API Gateway access logs (REST, HTTP and
// WebSocket APIs) written in a JSON access-log format: the $context variables
// the stage's accessLogSettings.format names, under the key names AWS's
// examples use (requestId, ip, caller, user, requestTime, httpMethod,
// resourcePath or routeKey, status, protocol, responseLength, …). Nested
// objects ("identity": {"sourceIp": …}) and dotted keys
// ("identity.sourceIp") are accepted too. A record may also be:
//
//   - a collector wrapper whose "message" string holds the access log (the
//     form Elastic's and other agents ship CloudWatch lines in), or
//   - a CloudWatch Logs subscription payload ({"messageType":"DATA_MESSAGE",
//     "owner":…, "logEvents":[{"id","timestamp","message"}…]}, decompressed)
//     which yields one event per log event; it decodes whole or not at all.
//
// The zero value is ready to use.
type APIGatewayDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewAPIGateway returns an APIGatewayDecoder with the default limits.
func NewAPIGateway() *APIGatewayDecoder {
	return &APIGatewayDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*APIGatewayDecoder) Format() string { return APIGatewayFormat }

// apigwIdentity is $context.identity logged as a nested object.
type apigwIdentity struct {
	SourceIP  scalar `json:"sourceIp"`
	UserAgent scalar `json:"userAgent"`
	UserArn   scalar `json:"userArn"`
	Caller    scalar `json:"caller"`
	User      scalar `json:"user"`
	APIKeyID  scalar `json:"apiKeyId"`
	AccessKey scalar `json:"accessKey"`
}

// apigwLog holds the access-log keys nhisentry reads. $context.identity.apiKey
// (the key's secret value) is deliberately not among them.
type apigwLog struct {
	RequestID          scalar `json:"requestId"`
	ExtendedRequestID  scalar `json:"extendedRequestId"`
	IP                 scalar `json:"ip"`
	SourceIP           scalar `json:"sourceIp"`
	Caller             scalar `json:"caller"`
	User               scalar `json:"user"`
	UserArn            scalar `json:"userArn"`
	UserAgent          scalar `json:"userAgent"`
	APIKeyID           scalar `json:"apiKeyId"`
	AccessKey          scalar `json:"accessKey"`
	RequestTime        scalar `json:"requestTime"`
	RequestTimeEpoch   scalar `json:"requestTimeEpoch"`
	HTTPMethod         scalar `json:"httpMethod"`
	ResourcePath       scalar `json:"resourcePath"`
	RouteKey           scalar `json:"routeKey"`
	Path               scalar `json:"path"`
	Status             scalar `json:"status"`
	Protocol           scalar `json:"protocol"`
	ResponseLength     scalar `json:"responseLength"`
	IntegrationLatency scalar `json:"integrationLatency"`
	ResponseLatency    scalar `json:"responseLatency"`
	AccountID          scalar `json:"accountId"`
	APIID              scalar `json:"apiId"`
	Stage              scalar `json:"stage"`
	DomainName         scalar `json:"domainName"`
	PrincipalID        scalar `json:"principalId"`
	ErrorMessage       scalar `json:"errorMessage"`
	ErrorResponseType  scalar `json:"errorResponseType"`

	// Dotted spellings of the $context variables.
	DotSourceIP     scalar `json:"identity.sourceIp"`
	DotUserAgent    scalar `json:"identity.userAgent"`
	DotUserArn      scalar `json:"identity.userArn"`
	DotCaller       scalar `json:"identity.caller"`
	DotAPIKeyID     scalar `json:"identity.apiKeyId"`
	DotAccessKey    scalar `json:"identity.accessKey"`
	DotPrincipalID  scalar `json:"authorizer.principalId"`
	DotClaimsSub    scalar `json:"authorizer.claims.sub"`
	DotErrorMessage scalar `json:"error.message"`
	DotResponseType scalar `json:"error.responseType"`

	Identity   apigwIdentity `json:"identity"`
	Authorizer struct {
		PrincipalID scalar `json:"principalId"`
		Claims      struct {
			Sub scalar `json:"sub"`
		} `json:"claims"`
	} `json:"authorizer"`
	Error struct {
		Message      scalar `json:"message"`
		ResponseType scalar `json:"responseType"`
	} `json:"error"`

	// A collector wrapper.
	Message *string `json:"message"`

	// A CloudWatch Logs subscription payload.
	MessageType string `json:"messageType"`
	Owner       string `json:"owner"`
	LogEvents   []struct {
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
		Message   string `json:"message"`
	} `json:"logEvents"`
}

func (l *apigwLog) scalars() [49]namedScalar {
	return [...]namedScalar{
		{"requestId", &l.RequestID}, {"extendedRequestId", &l.ExtendedRequestID},
		{"ip", &l.IP}, {"sourceIp", &l.SourceIP}, {"caller", &l.Caller}, {"user", &l.User},
		{"userArn", &l.UserArn}, {"userAgent", &l.UserAgent}, {"apiKeyId", &l.APIKeyID},
		{"accessKey", &l.AccessKey}, {"requestTime", &l.RequestTime},
		{"requestTimeEpoch", &l.RequestTimeEpoch}, {"httpMethod", &l.HTTPMethod},
		{"resourcePath", &l.ResourcePath}, {"routeKey", &l.RouteKey}, {"path", &l.Path},
		{"status", &l.Status}, {"protocol", &l.Protocol}, {"responseLength", &l.ResponseLength},
		{"integrationLatency", &l.IntegrationLatency}, {"responseLatency", &l.ResponseLatency},
		{"accountId", &l.AccountID}, {"apiId", &l.APIID}, {"stage", &l.Stage},
		{"domainName", &l.DomainName}, {"principalId", &l.PrincipalID},
		{"errorMessage", &l.ErrorMessage}, {"errorResponseType", &l.ErrorResponseType},
		{"identity.sourceIp", &l.DotSourceIP}, {"identity.userAgent", &l.DotUserAgent},
		{"identity.userArn", &l.DotUserArn}, {"identity.caller", &l.DotCaller},
		{"identity.apiKeyId", &l.DotAPIKeyID}, {"identity.accessKey", &l.DotAccessKey},
		{"authorizer.principalId", &l.DotPrincipalID}, {"authorizer.claims.sub", &l.DotClaimsSub},
		{"error.message", &l.DotErrorMessage}, {"error.responseType", &l.DotResponseType},
		{"identity.sourceIp", &l.Identity.SourceIP}, {"identity.userAgent", &l.Identity.UserAgent},
		{"identity.userArn", &l.Identity.UserArn}, {"identity.caller", &l.Identity.Caller},
		{"identity.user", &l.Identity.User}, {"identity.apiKeyId", &l.Identity.APIKeyID},
		{"identity.accessKey", &l.Identity.AccessKey},
		{"authorizer.principalId", &l.Authorizer.PrincipalID},
		{"authorizer.claims.sub", &l.Authorizer.Claims.Sub},
		{"error.message", &l.Error.Message}, {"error.responseType", &l.Error.ResponseType},
	}
}

// isAccessLog reports whether the object has the keys every API Gateway
// access-log format has at least one of.
func (l *apigwLog) isAccessLog() bool {
	return l.RequestID.v != "" || l.ExtendedRequestID.v != "" || l.HTTPMethod.v != "" ||
		l.RouteKey.v != "" || l.ResourcePath.v != ""
}

// Decode implements ingest.Decoder.
func (d *APIGatewayDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := ingest.UnwrapRecord(APIGatewayFormat, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l apigwLog
	if de := ingest.DecodeJSON(APIGatewayFormat, line, limit, ingest.DefaultMaxDepth, &l); de != nil {
		return dst, de
	}
	switch {
	case l.MessageType != "" || l.LogEvents != nil:
		return d.bundle(dst, rec, &l)
	case l.Message != nil && !l.isAccessLog():
		// A collector wrapper: the access log is the message string.
		msg := *l.Message
		l = apigwLog{}
		if de := decodeMessage(msg, limit, &l); de != nil {
			return dst, de
		}
	}
	ev, de := l.event(rec, rec.Value, "", 0)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// decodeMessage decodes an access log carried in a wrapper's message string.
func decodeMessage(msg string, limit int, l *apigwLog) *ingest.DecodeError {
	if t := strings.TrimLeft(msg, " \t\r\n"); t == "" || t[0] != '{' {
		return ingest.Errorf(APIGatewayFormat, ingest.ReasonNotAnEvent, "message %q is not a JSON access log (an execution log line?)", truncate(msg))
	}
	if de := ingest.DecodeJSON(APIGatewayFormat, []byte(msg), limit, ingest.DefaultMaxDepth, l); de != nil {
		de.Detail = "message: " + de.Detail
		return de
	}
	if l.Message != nil || l.LogEvents != nil {
		return ingest.Errorf(APIGatewayFormat, ingest.ReasonNotAnEvent, "message holds another wrapper, not an access log")
	}
	return nil
}

// bundle decodes a CloudWatch Logs subscription payload.
func (d *APIGatewayDecoder) bundle(dst []schemas.Event, rec ingest.Record, b *apigwLog) ([]schemas.Event, error) {
	if b.MessageType != "DATA_MESSAGE" {
		return dst, ingest.Errorf(APIGatewayFormat, ingest.ReasonNotAnEvent, "CloudWatch Logs %q payload carries no log events", truncate(b.MessageType))
	}
	if len(b.LogEvents) == 0 {
		return dst, ingest.Errorf(APIGatewayFormat, ingest.ReasonMissingField, "CloudWatch Logs payload has no logEvents")
	}
	n := len(dst)
	for i, le := range b.LogEvents {
		var l apigwLog
		if de := decodeMessage(le.Message, ingest.RecordLimit(d.MaxRecordBytes), &l); de != nil {
			de.Detail = "logEvents[" + strconv.Itoa(i) + "]: " + de.Detail
			return dst[:n], de
		}
		if le.Timestamp < 0 || le.Timestamp >= maxEpochMillis {
			return dst[:n], ingest.Errorf(APIGatewayFormat, ingest.ReasonBadField, "logEvents[%d].timestamp %d is not a Unix time in milliseconds", i, le.Timestamp)
		}
		ev, de := l.event(rec, []byte(le.Message), b.Owner, le.Timestamp)
		if de != nil {
			de.Detail = "logEvents[" + strconv.Itoa(i) + "]: " + de.Detail
			return dst[:n], de
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

// event builds the event of one access log. raw is the access log's own
// bytes (for the hash id); owner and tsMillis come from a CloudWatch Logs
// payload, when there is one.
func (l *apigwLog) event(rec ingest.Record, raw []byte, owner string, tsMillis int64) (schemas.Event, *ingest.DecodeError) {
	const f = APIGatewayFormat
	fields := l.scalars() // an array: no allocation
	if de := checkScalars(f, fields[:]); de != nil {
		return schemas.Event{}, de
	}
	if !l.isAccessLog() {
		return schemas.Event{}, ingest.Errorf(f, ingest.ReasonNotAnEvent, "no requestId, httpMethod, routeKey or resourcePath: not an API Gateway access log")
	}

	t, de := l.time(tsMillis)
	if de != nil {
		return schemas.Event{}, de
	}
	status, de := parseStatus(f, "status", l.Status.v)
	if de != nil {
		return schemas.Event{}, de
	}
	bytesOut, de := parseBytes(f, "responseLength", l.ResponseLength.v)
	if de != nil {
		return schemas.Event{}, de
	}
	latencyField, latency := "responseLatency", l.ResponseLatency.v
	if latency == "" {
		latencyField, latency = "integrationLatency", l.IntegrationLatency.v
	}
	duration, de := parseMillis(f, latencyField, latency)
	if de != nil {
		return schemas.Event{}, de
	}

	ip := ingest.FirstOf(l.IP.v, l.SourceIP.v, l.DotSourceIP.v, l.Identity.SourceIP.v)
	if ip != "" {
		if ip, de = parseIP(f, "ip", ip); de != nil {
			return schemas.Event{}, de
		}
	}

	var (
		id      schemas.Identity
		cred    schemas.Credential
		session string
	)
	apiKeyID := ingest.FirstOf(l.APIKeyID.v, l.DotAPIKeyID.v, l.Identity.APIKeyID.v)
	userArn := ingest.FirstOf(l.UserArn.v, l.DotUserArn.v, l.Identity.UserArn.v)
	principal := ingest.FirstOf(l.PrincipalID.v, l.DotPrincipalID.v, l.Authorizer.PrincipalID.v, l.DotClaimsSub.v, l.Authorizer.Claims.Sub.v)
	switch {
	case apiKeyID != "":
		id = ingest.APIKeyIdentity(f, apiKeyID)
		cred = schemas.Credential{ID: apiKeyID, Type: "apigateway_api_key"}
	case userArn != "":
		var err error
		if id, session, err = ingest.AWSIdentity(userArn); err != nil {
			return schemas.Event{}, ingest.Errorf(f, ingest.ReasonBadField, "userArn: %v", err)
		}
		if ak := ingest.FirstOf(l.AccessKey.v, l.DotAccessKey.v, l.Identity.AccessKey.v); ak != "" {
			cred = schemas.Credential{ID: ak, Type: "aws_access_key"}
		}
	case principal != "":
		// A Lambda authorizer's principalId or a Cognito/JWT subject is
		// only unique within the authorizer, i.e. within the API.
		id = schemas.Identity{
			ID:   "apigateway:principal/" + ingest.FirstOf(l.APIID.v, "-") + "/" + principal,
			Kind: schemas.KindUnknown,
			Name: principal,
		}
	case ip != "":
		id = ingest.IPIdentity(ip)
		// The IAM principal id (AIDA…, AROA…:session) when userArn is not
		// logged: not canonical, but worth showing.
		id.Name = ingest.FirstOf(l.Caller.v, l.DotCaller.v, l.Identity.Caller.v)
	default:
		return schemas.Event{}, ingest.Errorf(f, ingest.ReasonMissingField, "no apiKeyId, userArn, authorizer principalId or source ip to identify the caller")
	}

	action, de := l.action()
	if de != nil {
		return schemas.Event{}, de
	}

	eventID := ingest.FirstOf(l.RequestID.v, l.ExtendedRequestID.v)
	if eventID != "" {
		eventID = f + ":" + eventID
	} else {
		eventID = schemas.HashID(f, raw)
	}

	service := l.DomainName.v
	if service == "" && l.APIID.v != "" {
		service = l.APIID.v
		if l.Stage.v != "" {
			service += "/" + l.Stage.v
		}
	}

	o := ingest.HTTPOutcome(status)
	o.ErrorCode = ingest.FirstOf(l.ErrorResponseType.v, l.DotResponseType.v, l.Error.ResponseType.v)
	if o.ErrorCode == "" {
		o.ErrorCode = errorCode(ingest.FirstOf(l.ErrorMessage.v, l.DotErrorMessage.v, l.Error.Message.v))
	}

	return schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyGateway,
			Format:   f,
			Provider: "aws",
			Account:  ingest.FirstOf(l.AccountID.v, owner),
			Region:   regionOf(l.DomainName.v),
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: ingest.FirstOf(l.UserAgent.v, l.DotUserAgent.v, l.Identity.UserAgent.v),
			Session:   session,
		},
		Action:     action,
		Service:    service,
		Target:     schemas.Target{Resource: stripQuery(l.Path.v)},
		Outcome:    o,
		BytesOut:   bytesOut,
		DurationMS: duration,
		Provenance: rec.Provenance(),
	}, nil
}

// time prefers the millisecond epoch over the second-precision CLF time,
// and falls back to the CloudWatch Logs event timestamp.
func (l *apigwLog) time(tsMillis int64) (time.Time, *ingest.DecodeError) {
	const f = APIGatewayFormat
	if s := l.RequestTimeEpoch.v; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, ingest.Errorf(f, ingest.ReasonBadField, "requestTimeEpoch %q is not a Unix time", truncate(s))
		}
		if n < 1e11 { // seconds (until the year 5138)
			n *= 1000
		}
		if n >= maxEpochMillis {
			return time.Time{}, ingest.Errorf(f, ingest.ReasonBadField, "requestTimeEpoch %d is past the year 9999", n)
		}
		return time.UnixMilli(n), nil
	}
	if s := l.RequestTime.v; s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, checkYear(f, "requestTime", t)
		}
		return parseCLFTime(f, "requestTime", s)
	}
	if tsMillis > 0 {
		return time.UnixMilli(tsMillis), nil
	}
	return time.Time{}, ingest.Errorf(f, ingest.ReasonMissingField, "requestTime and requestTimeEpoch are missing")
}

// action is "METHOD /resource/{template}": the routeKey (HTTP and WebSocket
// APIs, already "METHOD /template", or a WebSocket route like "$connect") or
// the resourcePath (REST APIs) are templates already; only a bare path is
// templated here.
func (l *apigwLog) action() (string, *ingest.DecodeError) {
	method, route := l.HTTPMethod.v, l.RouteKey.v
	if m, p, ok := strings.Cut(route, " "); ok && strings.HasPrefix(p, "/") {
		if m == "ANY" && method != "" {
			m = method // the route serves every method
		}
		if strings.Contains(p, "+}") && l.Path.v != "" {
			// A greedy route (/{proxy+}) says nothing of the resource:
			// template the request path instead.
			return m + " " + ingest.TemplatePath(l.stagelessPath()), nil
		}
		return m + " " + p, nil
	}
	if method == "" {
		if route != "" {
			return route, nil // WebSocket: $connect, $default, sendMessage
		}
		return "", ingest.Errorf(APIGatewayFormat, ingest.ReasonMissingField, "httpMethod and routeKey are missing")
	}
	switch {
	case strings.Contains(l.ResourcePath.v, "+}") && l.Path.v != "":
		return method + " " + ingest.TemplatePath(l.stagelessPath()), nil
	case l.ResourcePath.v != "":
		return method + " " + l.ResourcePath.v, nil
	case l.Path.v != "":
		return method + " " + ingest.TemplatePath(l.Path.v), nil
	case route != "":
		return method + " " + route, nil // "$default" without a path
	}
	return method, nil
}

// stagelessPath is the request path without the "/<stage>" prefix REST
// APIs' $context.path carries.
func (l *apigwLog) stagelessPath() string {
	if st := l.Stage.v; st != "" && st != "$default" {
		if p, ok := strings.CutPrefix(l.Path.v, "/"+st+"/"); ok {
			return "/" + p
		}
	}
	return l.Path.v
}

// regionOf reads the region out of a default execute-api domain name
// (<api>.execute-api.<region>.amazonaws.com); custom domains name none.
func regionOf(domain string) string {
	_, rest, ok := strings.Cut(domain, ".execute-api.")
	if !ok {
		return ""
	}
	region, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return region
}

// errorCode keeps the fixed head of an API Gateway error message: messages
// such as "Invalid key=value pair … in Authorization header (hashed …): '…'"
// end in request-specific text, which is no code.
func errorCode(msg string) string {
	if i := strings.Index(msg, ": "); i > 0 {
		msg = msg[:i]
	}
	return ingest.Truncate(msg, 128)
}
