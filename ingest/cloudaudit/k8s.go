package cloudaudit

import (
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatK8sAudit is the configured name of the Kubernetes audit decoder.
const FormatK8sAudit = "k8s_audit"

// defaultCluster names the cluster when neither the wrapper nor the
// decoder's configuration does.
const defaultCluster = "default"

// K8sAuditDecoder decodes Kubernetes audit events (audit.k8s.io/v1 Event)
// in the shapes they are shipped in:
//
//   - one Event per record (the log backend's JSON lines, EKS control-plane
//     logs read from CloudWatch one message at a time);
//   - an EventList (the webhook backend's batches);
//   - an AKS diagnostic record {"category":"kube-audit","properties":
//     {"log":"<Event as a JSON string>"},"resourceId":"…/managedClusters/<name>"}
//     and the Event Hub batch {"records":[…]} of them;
//   - a CloudWatch Logs subscription batch {"logGroup":"/aws/eks/<cluster>/cluster",
//     "logEvents":[{"message":"<Event>"},…]}.
//
// The apiserver logs one Event per stage of a request under the same
// auditID. Only the final stages become events: ResponseComplete (and
// Panic, the request failed inside the apiserver); RequestReceived and
// ResponseStarted (sent before a watch's long response) decode to zero
// events and no error, because they carry no outcome and the same request
// is logged again when it completes: counting them would count every
// request two or three times. An Event without a stage (rule-test samples,
// trimmed exports) is taken as complete.
type K8sAuditDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Cluster names the cluster of events whose wrapper does not; "" means
	// "default".
	Cluster string
}

// NewK8sAudit returns a K8sAuditDecoder with the default limits.
func NewK8sAudit() *K8sAuditDecoder {
	return &K8sAuditDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*K8sAuditDecoder) Format() string { return FormatK8sAudit }

// k8sDoc is any of the shapes a record can have.
type k8sDoc struct {
	k8sEvent
	Items      []json.RawMessage `json:"items"` // EventList
	Category   string            `json:"category"`
	ResourceID string            `json:"resourceId"`
	Time       string            `json:"time"`
	Properties obj[struct {
		Log *string `json:"log"`
	}] `json:"properties"`
	Records   []json.RawMessage `json:"records"`
	LogGroup  string            `json:"logGroup"`
	LogEvents []struct {
		Message   string `json:"message"`
		Timestamp int64  `json:"timestamp"`
	} `json:"logEvents"`
}

type k8sEvent struct {
	Kind       *text  `json:"kind"`
	APIVersion string `json:"apiVersion"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       *struct {
		Username string                `json:"username"`
		Extra    map[string]list[text] `json:"extra"`
	} `json:"user"`
	SourceIPs      list[text]        `json:"sourceIPs"`
	UserAgent      string            `json:"userAgent"`
	ObjectRef      obj[k8sObjectRef] `json:"objectRef"`
	ResponseStatus obj[struct {
		Code   int  `json:"code"`
		Reason text `json:"reason"`
	}] `json:"responseStatus"`
	RequestObject obj[struct {
		Spec obj[struct {
			ExpirationSeconds int64 `json:"expirationSeconds"`
			BoundObjectRef    obj[struct {
				Kind text `json:"kind"`
				Name text `json:"name"`
			}] `json:"boundObjectRef"`
		}] `json:"spec"`
	}] `json:"requestObject"`
	ResponseObject obj[struct {
		Status obj[struct {
			ExpirationTimestamp text `json:"expirationTimestamp"`
		}] `json:"status"`
	}] `json:"responseObject"`
	RequestReceivedTimestamp string          `json:"requestReceivedTimestamp"`
	StageTimestamp           string          `json:"stageTimestamp"`
	Annotations              map[string]text `json:"annotations"`
	PEventTime               string          `json:"p_event_time"` // Panther's copy of the event time
}

type k8sObjectRef struct {
	Resource    string `json:"resource"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	APIGroup    string `json:"apiGroup"`
	Subresource string `json:"subresource"`
}

// k8sWrap is what the wrapper says about the events inside it.
type k8sWrap struct {
	provider, cluster, account string
	time                       string // the wrapper's time, a fallback
}

// Decode implements ingest.Decoder.
func (d *K8sAuditDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	var doc k8sDoc
	raw := ingest.Unwrap(rec.Value)
	lim := ingest.RecordLimit(d.MaxRecordBytes)
	if de := ingest.DecodeJSON(FormatK8sAudit, raw, lim, ingest.DefaultMaxDepth, &doc); de != nil {
		return dst, de
	}
	n := len(dst)
	dst, de := d.document(dst, rec, &doc, k8sWrap{cluster: d.Cluster}, lim, "")
	if de != nil {
		return dst[:n], de
	}
	return dst, nil
}

// document appends the events of one decoded document; at names its place
// in an enclosing batch, for error details and ids.
func (d *K8sAuditDecoder) document(dst []schemas.Event, rec ingest.Record, doc *k8sDoc, w k8sWrap, lim int, at string) ([]schemas.Event, *ingest.DecodeError) {
	prefix := func(de *ingest.DecodeError, where string) *ingest.DecodeError {
		de.Detail = at + where + ": " + de.Detail
		return de
	}
	switch {
	case doc.Properties.V.Log != nil:
		// AKS diagnostic record: the Event is a JSON string.
		w.provider = "azure"
		if name := azureManagedCluster(doc.ResourceID); name != "" {
			w.cluster = strings.ToLower(name) // Azure resource names are case-insensitive
		}
		w.account = azureSubscription(doc.ResourceID)
		w.time = doc.Time
		var inner k8sDoc
		if de := ingest.DecodeJSON(FormatK8sAudit, []byte(*doc.Properties.V.Log), lim, ingest.DefaultMaxDepth, &inner); de != nil {
			return dst, prefix(de, "properties.log")
		}
		if inner.Properties.V.Log != nil || inner.Records != nil || inner.LogEvents != nil {
			return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%sproperties.log holds another wrapper, not an audit Event", at)
		}
		return d.document(dst, rec, &inner, w, lim, at+"properties.log: ")
	case doc.Category != "" && doc.Kind == nil:
		return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%sdiagnostic record of category %q without properties.log", at, doc.Category)
	case doc.Records != nil:
		if at != "" {
			return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%snested records batch", at)
		}
		for i, r := range doc.Records {
			var inner k8sDoc
			where := "records[" + strconv.Itoa(i) + "]"
			if de := ingest.DecodeJSON(FormatK8sAudit, r, lim, ingest.DefaultMaxDepth, &inner); de != nil {
				return dst, prefix(de, where)
			}
			var de *ingest.DecodeError
			if dst, de = d.document(dst, rec, &inner, w, lim, where+": "); de != nil {
				return dst, de
			}
		}
		return dst, nil
	case doc.LogEvents != nil:
		if at != "" {
			return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%snested logEvents batch", at)
		}
		w.provider = "aws"
		if name := eksLogGroupCluster(doc.LogGroup); name != "" {
			w.cluster = name
		}
		for i, le := range doc.LogEvents {
			var inner k8sDoc
			where := "logEvents[" + strconv.Itoa(i) + "]"
			if de := ingest.DecodeJSON(FormatK8sAudit, []byte(le.Message), lim, ingest.DefaultMaxDepth, &inner); de != nil {
				return dst, prefix(de, where+".message")
			}
			iw := w
			if le.Timestamp > 0 && le.Timestamp < maxEpochMillis {
				iw.time = time.UnixMilli(le.Timestamp).UTC().Format(time.RFC3339Nano)
			}
			var de *ingest.DecodeError
			if dst, de = d.document(dst, rec, &inner, iw, lim, where+": "); de != nil {
				return dst, de
			}
		}
		return dst, nil
	}
	if doc.Kind == nil {
		return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%sno kind: not an audit.k8s.io Event", at)
	}
	switch kind := string(*doc.Kind); kind {
	case "Event":
	case "EventList":
		if at != "" {
			return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%snested EventList", at)
		}
		for i, it := range doc.Items {
			var inner k8sDoc
			where := "items[" + strconv.Itoa(i) + "]"
			if de := ingest.DecodeJSON(FormatK8sAudit, it, lim, ingest.DefaultMaxDepth, &inner); de != nil {
				return dst, prefix(de, where)
			}
			if inner.Kind == nil {
				// Items of a list carry no kind of their own.
				kind := text("Event")
				inner.Kind = &kind
			}
			var de *ingest.DecodeError
			if dst, de = d.document(dst, rec, &inner, w, lim, where+": "); de != nil {
				return dst, de
			}
		}
		return dst, nil
	default:
		return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%skind %q is not an audit.k8s.io Event or EventList", at, kind)
	}
	if v := doc.APIVersion; v != "" && !strings.HasPrefix(v, "audit.k8s.io/") {
		return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonNotAnEvent, "%sapiVersion %q is not audit.k8s.io (a core/v1 Event is not an audit event)", at, v)
	}
	switch doc.Stage {
	case "", "ResponseComplete", "Panic":
	case "RequestReceived", "ResponseStarted":
		return dst, nil // see the type's comment: the final stage is the event
	default:
		return dst, ingest.Errorf(FormatK8sAudit, ingest.ReasonBadField, "%sstage %q is not an audit stage", at, doc.Stage)
	}
	ev, de := doc.k8sEvent.event(rec, w, at)
	if de != nil {
		de.Detail = at + de.Detail
		return dst, de
	}
	return append(dst, ev), nil
}

// maxEpochMillis is 10000-01-01T00:00:00Z.
const maxEpochMillis = 253402300800000

func (e *k8sEvent) event(rec ingest.Record, w k8sWrap, at string) (schemas.Event, *ingest.DecodeError) {
	if e.Verb == "" {
		return schemas.Event{}, ingest.Errorf(FormatK8sAudit, ingest.ReasonMissingField, "verb is missing")
	}
	if e.User == nil || e.User.Username == "" {
		return schemas.Event{}, ingest.Errorf(FormatK8sAudit, ingest.ReasonMissingField, "user.username is missing")
	}
	start, de := eventTime(FormatK8sAudit, []string{"requestReceivedTimestamp", "stageTimestamp", "time (wrapper)", "p_event_time"},
		e.RequestReceivedTimestamp, e.StageTimestamp, w.time, e.PEventTime)
	if de != nil {
		return schemas.Event{}, de
	}
	var durationMS float64
	if e.RequestReceivedTimestamp != "" && e.StageTimestamp != "" {
		if end, err := parseTime(e.StageTimestamp); err == nil && !end.Before(start) {
			durationMS = float64(end.Sub(start)) / float64(time.Millisecond)
		}
	}
	cluster := clusterOr(w.cluster)
	id := k8sUser(cluster, e.User.Username)
	if id.ID == "" {
		return schemas.Event{}, ingest.Errorf(FormatK8sAudit, ingest.ReasonBadField, "user.username %q is not a valid service account name", e.User.Username)
	}
	actor := schemas.Actor{UserAgent: e.UserAgent}
	if len(e.SourceIPs) > 0 {
		actor.IP = hostIP(string(e.SourceIPs[0]))
	}
	switch {
	case id.Kind == schemas.KindServiceAccount:
		actor.Namespace, _, _ = strings.Cut(id.Name, "/")
	case strings.HasPrefix(id.ID, "k8s:node/"):
		actor.Node = id.Name
	}
	var cred schemas.Credential
	if ex := e.User.Extra; ex != nil {
		if v := ex["authentication.kubernetes.io/pod-name"]; len(v) > 0 {
			actor.Workload = string(v[0])
		}
		if v := ex["authentication.kubernetes.io/node-name"]; len(v) > 0 && actor.Node == "" {
			actor.Node = string(v[0])
		}
		if v := ex["authentication.kubernetes.io/credential-id"]; len(v) > 0 {
			cred = k8sCredential(string(v[0]))
		}
	}
	if cred.ID == "" {
		cred = legacyToken(e.Annotations)
	}

	ref := &e.ObjectRef.V
	action := "k8s:" + e.Verb + ":"
	var target string
	switch {
	case ref.Resource != "":
		action += ref.Resource
		if ref.Subresource != "" {
			action += "/" + ref.Subresource
		}
		target = ref.Resource
		if ref.Name != "" {
			target += "/" + ref.Name
		}
		if ref.Namespace != "" {
			target = ref.Namespace + "/" + target
		}
	case e.RequestURI != "":
		// A non-resource URL (/healthz, /version, /apis): the path is the
		// resource.
		p, _, _ := strings.Cut(e.RequestURI, "?")
		action += ingest.TemplatePath(p)
		target = p
	default:
		action += "unknown"
	}

	eventID := schemas.HashID(FormatK8sAudit, rec.Value)
	if at != "" {
		eventID += "/" + strings.TrimSuffix(at, ": ")
	}
	if e.AuditID != "" {
		eventID = "k8s:" + e.AuditID
		if e.Stage != "" {
			eventID += "/" + e.Stage
		}
	}
	provider := w.provider
	if provider == "" {
		provider = "kubernetes"
	}
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(start),
		Source: schemas.Source{
			Family:   schemas.FamilyCloudAudit,
			Format:   FormatK8sAudit,
			Provider: provider,
			Account:  w.account,
			Cluster:  cluster,
		},
		Identity:   id,
		Credential: cred,
		Actor:      actor,
		Action:     action,
		Service:    "kube-apiserver",
		Target:     schemas.Target{Resource: target},
		Outcome:    e.outcome(),
		DurationMS: durationMS,
		Provenance: rec.Provenance(),
	}
	if e.Verb == "create" && ref.Resource == "serviceaccounts" && ref.Subresource == "token" && ev.Outcome.Result == schemas.ResultSuccess {
		ev.Issuance = e.tokenIssuance(start, cluster, id)
	}
	return ev, nil
}

// k8sCredential names the credential of user.extra's
// authentication.kubernetes.io/credential-id: "JTI=<id>" for a
// service-account token, "X509SHA256=<fingerprint>" for a client
// certificate.
func k8sCredential(v string) schemas.Credential {
	switch {
	case strings.HasPrefix(v, "JTI="):
		return schemas.Credential{ID: v, Type: "k8s_sa_token"}
	case strings.HasPrefix(v, "X509SHA256="):
		return schemas.Credential{ID: v, Type: "x509_certificate"}
	}
	return schemas.Credential{ID: v}
}

// legacyToken names the Secret of a legacy service-account token, which the
// apiserver records in an audit annotation ("<namespace>/<secret>"): the
// credential a response revokes by deleting that Secret.
func legacyToken(ann map[string]text) schemas.Credential {
	for _, k := range []string{"authentication.k8s.io/legacy-token-manual-secret", "authentication.k8s.io/legacy-token-autogenerated-secret"} {
		if v := string(ann[k]); v != "" {
			_, name, ok := strings.Cut(v, "/")
			if !ok {
				name = v
			}
			return schemas.Credential{ID: name, Type: "k8s_sa_token"}
		}
	}
	return schemas.Credential{}
}

// outcome: an authorizer's "forbid" and 401/403 are denials; any other
// status of 400 or more, and a Panic, are failures.
func (e *k8sEvent) outcome() schemas.Outcome {
	st := &e.ResponseStatus.V
	o := schemas.Outcome{Result: schemas.ResultSuccess, Status: st.Code, ErrorCode: string(st.Reason)}
	switch {
	case string(e.Annotations["authorization.k8s.io/decision"]) == "forbid", st.Code == 401, st.Code == 403:
		o.Result = schemas.ResultDenied
	case st.Code >= 400, e.Stage == "Panic":
		o.Result = schemas.ResultFailure
	}
	return o
}

// tokenIssuance describes a TokenRequest (create serviceaccounts/token):
// the requester asked the apiserver to mint a token for the service
// account named by objectRef. Kubernetes ≥ 1.29 logs the new token's id
// as the authentication.kubernetes.io/issued-credential-id annotation.
func (e *k8sEvent) tokenIssuance(t time.Time, cluster string, requester schemas.Identity) *schemas.Issuance {
	ref := &e.ObjectRef.V
	is := &schemas.Issuance{
		Credential:     string(e.Annotations["authentication.kubernetes.io/issued-credential-id"]),
		CredentialType: "k8s_sa_token",
		Issuer:         "k8s:" + cluster,
		Requester:      requester.ID,
	}
	if sa, err := ingest.K8sServiceAccount(cluster, ref.Namespace, ref.Name); err == nil {
		is.Subject = sa.ID
	}
	spec := &e.RequestObject.V.Spec.V
	switch exp := string(e.ResponseObject.V.Status.V.ExpirationTimestamp); {
	case spec.ExpirationSeconds > 0 && spec.ExpirationSeconds < 1<<32:
		is.TTLSeconds = spec.ExpirationSeconds
	case exp != "":
		if end, err := parseTime(exp); err == nil && end.After(t) {
			is.TTLSeconds = int64(end.Sub(t) / time.Second)
		}
	}
	if b := &spec.BoundObjectRef.V; b.Kind != "" && b.Name != "" {
		// The object the token is bound to (a pod, a secret): it dies with it.
		is.SANs = []string{strings.ToLower(string(b.Kind)) + ":" + string(b.Name)}
	}
	return is
}

// k8sUser resolves a Kubernetes user name in cluster: service accounts to
// k8s:sa/…, nodes (system:node:<n>) to k8s:node/<cluster>/<n> (kind
// unknown: the kubelet acts for every pod of the node), anyone else to
// k8s:user/<cluster>/<name>. It returns the zero Identity for a malformed
// service-account name.
func k8sUser(cluster, username string) schemas.Identity {
	if strings.HasPrefix(username, "system:serviceaccount:") {
		id, err := ingest.K8sUsername(cluster, username)
		if err != nil {
			return schemas.Identity{}
		}
		return id
	}
	if node, ok := strings.CutPrefix(username, "system:node:"); ok && node != "" {
		return schemas.Identity{ID: "k8s:node/" + cluster + "/" + node, Kind: schemas.KindUnknown, Name: node}
	}
	return schemas.Identity{ID: "k8s:user/" + cluster + "/" + username, Kind: schemas.KindUser, Name: username}
}

func clusterOr(c string) string {
	if c == "" {
		return defaultCluster
	}
	return c
}

// azureManagedCluster returns <name> of an AKS resource id
// ".../providers/Microsoft.ContainerService/managedClusters/<name>".
func azureManagedCluster(resourceID string) string {
	i := strings.Index(strings.ToLower(resourceID), "/managedclusters/")
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(resourceID[i+len("/managedclusters/"):], "/")
	return name
}

// eksLogGroupCluster returns <cluster> of "/aws/eks/<cluster>/cluster".
func eksLogGroupCluster(group string) string {
	rest, ok := strings.CutPrefix(group, "/aws/eks/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
