package issuance

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// CertManagerFormat is the configured name of the cert-manager controller
// log decoder.
const CertManagerFormat = "certmanager"

// Defaults of the cert-manager controller's own service account.
const (
	DefaultCertManagerNamespace      = "cert-manager"
	DefaultCertManagerServiceAccount = "cert-manager"
)

// CertManagerDecoder decodes cert-manager controller log lines, klog text
// ("I0113 16:51:59.186482 1 file.go:261] message", plain or structured) or
// the JSON logging format ({"ts":…,"msg":…,"logger":…,"resource_name":…}).
// Lines about CertificateRequest / Certificate issuance are events of the
// controller's own service account; every other line is not_an_event. The
// zero value is ready to use; NewCertManager spells the defaults out.
//
// klog headers carry no year. The year is taken, in this order, from a full
// timestamp of the same month and day embedded in the message (the
// "Setting lastTransitionTime … to 2022-01-13 16:51:59 +0000 UTC" lines),
// from Year when it is set, and else from the Kafka record time: its year,
// or the year before when that would put the line more than a day after the
// record was written (a December line read in January). A klog line with
// none of the three is dead-lettered as missing_field. klog times are taken
// as UTC, which is what cert-manager containers log in.
type CertManagerDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Cluster names the cluster of the controller's service account; ""
	// means DefaultCluster.
	Cluster string
	// Namespace and ServiceAccount name the controller's service account;
	// "" means DefaultCertManagerNamespace / DefaultCertManagerServiceAccount.
	Namespace, ServiceAccount string
	// Year is the year of klog lines that embed no full timestamp; 0 means
	// the year of the record's Kafka time.
	Year int
}

// NewCertManager returns a CertManagerDecoder with the default limits and
// names.
func NewCertManager() *CertManagerDecoder {
	return &CertManagerDecoder{
		MaxRecordBytes: ingest.DefaultMaxRecordBytes,
		Cluster:        DefaultCluster,
		Namespace:      DefaultCertManagerNamespace,
		ServiceAccount: DefaultCertManagerServiceAccount,
	}
}

// Format implements ingest.Decoder.
func (*CertManagerDecoder) Format() string { return CertManagerFormat }

// cmLine is a cert-manager log line in either format.
type cmLine struct {
	t        time.Time
	severity byte // I, W, E, F
	msg      string
	logger   string
	f        kvs
	dnsNames []string
}

// cmJSON is the JSON logging format of cert-manager (Kubernetes
// component-base JSON: ts in Unix seconds, v or level, msg, structured
// fields flattened).
type cmJSON struct {
	TS                  json.RawMessage       `json:"ts"`
	Level               ingest.LenientString  `json:"level"`
	Msg                 *string               `json:"msg"`
	Logger              ingest.LenientString  `json:"logger"`
	Err                 ingest.LenientString  `json:"err"`
	Error               ingest.LenientString  `json:"error"`
	Key                 ingest.LenientString  `json:"key"`
	ResourceName        ingest.LenientString  `json:"resource_name"`
	ResourceNamespace   ingest.LenientString  `json:"resource_namespace"`
	ResourceKind        ingest.LenientString  `json:"resource_kind"`
	RelatedResourceName ingest.LenientString  `json:"related_resource_name"`
	RelatedResourceKind ingest.LenientString  `json:"related_resource_kind"`
	Serial              ingest.LenientString  `json:"serial"`
	SerialNumber        ingest.LenientString  `json:"serial_number"`
	CommonName          ingest.LenientString  `json:"common_name"`
	DNSNames            ingest.LenientStrings `json:"dns_names"`
	DNSNamesK8s         ingest.LenientStrings `json:"DNSNames"`
}

// Decode implements ingest.Decoder.
func (d *CertManagerDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	raw, de := ingest.UnwrapRecord(CertManagerFormat, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l cmLine
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		l, de = parseCMJSON(trimmed, limit)
	} else {
		l, de = d.parseKlog(raw, rec.Time)
	}
	if de != nil {
		return dst, de
	}
	ev, de := d.event(&l, raw, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func parseCMJSON(raw []byte, limit int) (cmLine, *ingest.DecodeError) {
	var j cmJSON
	if de := ingest.DecodeJSON(CertManagerFormat, raw, limit, ingest.DefaultMaxDepth, &j); de != nil {
		return cmLine{}, de
	}
	if j.Msg == nil {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonNotAnEvent, "JSON object without msg is not a cert-manager log line")
	}
	if len(j.TS) == 0 {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonMissingField, "ts is missing")
	}
	t, err := parseTS(j.TS)
	if err != nil {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "ts: %v", err)
	}
	l := cmLine{t: t, severity: 'I', msg: *j.Msg, logger: string(j.Logger)}
	switch strings.ToLower(string(j.Level)) {
	case "warn", "warning":
		l.severity = 'W'
	case "error":
		l.severity = 'E'
	case "fatal", "panic":
		l.severity = 'F'
	}
	if j.Err != "" || j.Error != "" {
		l.severity = 'E'
	}
	add := func(k string, v ingest.LenientString) {
		if v != "" {
			l.f = append(l.f, kv{k, string(v)})
		}
	}
	add("key", j.Key)
	add("resource_name", j.ResourceName)
	add("resource_namespace", j.ResourceNamespace)
	add("resource_kind", j.ResourceKind)
	add("related_resource_name", j.RelatedResourceName)
	add("related_resource_kind", j.RelatedResourceKind)
	add("serial", j.Serial)
	add("serial_number", j.SerialNumber)
	add("common_name", j.CommonName)
	l.dnsNames = append([]string(j.DNSNames), j.DNSNamesK8s...)
	return l, nil
}

// maxUnixSeconds is 10000-01-01T00:00:00Z: later times do not fit RFC 3339.
const maxUnixSeconds = 253402300800

// parseTS reads a ts field: Unix seconds (a number, as Kubernetes JSON
// logging writes it) or an RFC 3339 string (zap's ISO 8601 encoder).
func parseTS(b []byte) (time.Time, error) {
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return time.Time{}, err
		}
		return time.Parse(time.RFC3339Nano, s)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return time.Time{}, err
	}
	return unixSeconds(f)
}

// unixSeconds converts fractional Unix seconds, rejecting times that do not
// fit RFC 3339 (and NaN).
func unixSeconds(f float64) (time.Time, error) {
	if !(f >= 0 && f < maxUnixSeconds) {
		return time.Time{}, strconv.ErrRange
	}
	// Round to the microsecond: float seconds carry ~0.2 µs of noise at
	// today's epoch, and truncation would turn .101234 into .101233.
	sec := int64(f)
	return time.Unix(sec, int64(math.Round((f-float64(sec))*1e6))*1e3).UTC(), nil
}

// parseKlog reads a klog text line.
func (d *CertManagerDecoder) parseKlog(raw []byte, recTime time.Time) (cmLine, *ingest.DecodeError) {
	if !utf8.Valid(raw) {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonInvalidUTF8, "line is not valid UTF-8")
	}
	s := strings.TrimRight(string(raw), "\r\n")
	// Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
	if len(s) < 22 || !strings.ContainsRune("IWEF", rune(s[0])) || s[5] != ' ' || s[8] != ':' || s[11] != ':' || s[14] != '.' {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonNotAnEvent, "not a klog line (want \"I0113 16:51:59.186482 1 file.go:261] message\")")
	}
	month, ok1 := digits(s[1:3])
	day, ok2 := digits(s[3:5])
	hh, ok3 := digits(s[6:8])
	mm, ok4 := digits(s[9:11])
	ss, ok5 := digits(s[12:14])
	us, ok6 := digits(s[15:21])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "klog header time %q is not mmdd hh:mm:ss.uuuuuu", s[1:21])
	}
	end := strings.Index(s[21:], "] ")
	if end < 0 {
		return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonNotAnEvent, "klog header has no \"] \" before the message")
	}
	msg := s[21+end+2:]
	year := embeddedYear(msg, month, day)
	if year == 0 {
		year = d.Year
	}
	wrapCheck := false
	if year == 0 && !recTime.IsZero() {
		year, wrapCheck = recTime.UTC().Year(), true
	}
	// Without a year the line can still be classified; only an event
	// needs its time, so event() dead-letters it then.
	var t time.Time
	if year != 0 {
		mk := func(y int) time.Time {
			return time.Date(y, time.Month(month), day, hh, mm, ss, us*1000, time.UTC)
		}
		t = mk(year)
		if wrapCheck && t.After(recTime.Add(24*time.Hour)) {
			t = mk(year - 1)
		}
		if t.Day() != day {
			return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "klog header date %s does not exist in %d", s[1:5], t.Year())
		}
	}
	l := cmLine{t: t, severity: s[0], msg: msg}
	switch {
	case strings.HasPrefix(msg, `"`):
		// Structured klog: "message" key="value" …
		q, n, ok := quoted(msg)
		if !ok {
			return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "structured klog message has no closing quote")
		}
		l.msg = q
		if l.f, ok = parseKV(msg[n:]); !ok {
			return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "structured klog key=value pairs do not parse")
		}
	case strings.Contains(msg, ` "msg"="`):
		// Old klogr: logger "msg"="message" "key"="value" …
		logger, rest, _ := strings.Cut(msg, ` `)
		f, ok := parseKV(rest)
		if !ok {
			return cmLine{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "klogr key=value pairs do not parse")
		}
		l.logger, l.msg, l.f = logger, f.get("msg"), f
	}
	if lg := l.f.get("logger"); lg != "" {
		l.logger = lg
	}
	if dn := l.f.first("DNSNames", "dns_names"); dn != "" {
		l.dnsNames = listValues(dn)
	}
	if l.f.first("err", "error") != "" {
		l.severity = 'E'
	}
	return l, nil
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, s != ""
}

// embeddedYear returns the year of the first "yyyy-mm-dd" in msg whose month
// and day are those of the klog header, or 0.
func embeddedYear(msg string, month, day int) int {
	for i := 0; i+10 <= len(msg); i++ {
		if msg[i+4] != '-' || msg[i+7] != '-' {
			continue
		}
		y, ok1 := digits(msg[i : i+4])
		m, ok2 := digits(msg[i+5 : i+7])
		dd, ok3 := digits(msg[i+8 : i+10])
		if ok1 && ok2 && ok3 && m == month && dd == day && y >= 1970 && (i+10 == len(msg) || msg[i+10] == ' ' || msg[i+10] == 'T') {
			return y
		}
	}
	return 0
}

// cmConditions are the CertificateRequest/Certificate conditions whose
// transitions are issuance events, with their outcome.
var cmConditions = map[string]schemas.Result{
	"Approved":       schemas.ResultSuccess,
	"Ready":          schemas.ResultSuccess,
	"Issuing":        schemas.ResultSuccess,
	"Denied":         schemas.ResultDenied,
	"InvalidRequest": schemas.ResultFailure,
}

// cmVerbs are the issuance messages, matched case-insensitively, and the
// action verb of each; the first match wins.
var cmVerbs = [...]struct{ text, verb string }{
	{"updated cert-manager tls certificate", "serving_certificate_updated"},
	{"certificate issued", "issued"},
	{"issued certificate", "issued"},
	{"certificate fetched from issuer", "issued"},
	{"issuing certificate", "issuing"},
	{"new certificate", "new_certificate"},
}

func (d *CertManagerDecoder) event(l *cmLine, raw []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	var (
		action, kind, name string
		result             = schemas.ResultSuccess
	)
	if rest, ok := strings.CutPrefix(l.msg, "Setting lastTransitionTime for "); ok {
		// Setting lastTransitionTime for CertificateRequest "x" condition "Ready" to …
		k, rest, _ := strings.Cut(rest, " ")
		n, rest, _ := strings.Cut(strings.TrimPrefix(rest, `"`), `"`)
		cond, _, _ := strings.Cut(strings.TrimPrefix(rest, ` condition "`), `"`)
		r, known := cmConditions[cond]
		if (k != "CertificateRequest" && k != "Certificate") || n == "" || !known {
			return schemas.Event{}, ingest.Errorf(CertManagerFormat, ingest.ReasonNotAnEvent, "condition %q of %s is not an issuance step", cond, k)
		}
		action, kind, name, result = "certmanager:"+strings.ToLower(cond), k, n, r
	} else {
		low := strings.ToLower(l.msg)
		for _, v := range cmVerbs {
			if strings.Contains(low, v.text) {
				action = "certmanager:" + v.verb
				break
			}
		}
		if action == "" {
			return schemas.Event{}, ingest.Errorf(CertManagerFormat, ingest.ReasonNotAnEvent, "cert-manager log line is not about certificate issuance: %q", ingest.Truncate(l.msg, 100))
		}
		if l.severity == 'E' || l.severity == 'F' || strings.Contains(low, "error") || strings.Contains(low, "fail") {
			result = schemas.ResultFailure
		}
	}
	ns := l.f.get("resource_namespace")
	if k := l.f.get("resource_kind"); k != "" && kind == "" {
		kind, name = k, l.f.get("resource_name")
	}
	if key := l.f.get("key"); ns == "" && strings.Count(key, "/") == 1 {
		// The workqueue key of a controller is namespace/name.
		ns, name, _ = strings.Cut(key, "/")
		if kind == "" && strings.Contains(l.logger, "certificaterequests") {
			kind = "CertificateRequest"
		}
	}

	if l.t.IsZero() {
		return schemas.Event{}, ingest.Errorf(CertManagerFormat, ingest.ReasonMissingField, "klog header has no year, the message embeds none, and neither Year nor the record time is set")
	}
	cluster := ingest.FirstOf(d.Cluster, DefaultCluster)
	id, err := ingest.K8sServiceAccount(cluster, ingest.FirstOf(d.Namespace, DefaultCertManagerNamespace), ingest.FirstOf(d.ServiceAccount, DefaultCertManagerServiceAccount))
	if err != nil {
		return schemas.Event{}, ingest.Errorf(CertManagerFormat, ingest.ReasonBadField, "controller identity: %v", err)
	}
	ev := schemas.Event{
		ID:   schemas.HashID(CertManagerFormat, raw),
		Time: schemas.At(l.t),
		Source: schemas.Source{
			Family:   schemas.FamilyIssuance,
			Format:   CertManagerFormat,
			Provider: "cert-manager",
			Cluster:  cluster,
		},
		Identity:   id,
		Action:     action,
		Service:    "cert-manager",
		Outcome:    schemas.Outcome{Result: result},
		Provenance: rec.Provenance(),
	}
	if name != "" && kind != "" {
		ev.Target.Resource = strings.ToLower(kind) + "/" + name
		if ns != "" {
			ev.Target.Resource = strings.ToLower(kind) + "/" + ns + "/" + name
		}
	}
	if result == schemas.ResultSuccess {
		is := &schemas.Issuance{
			Credential:     l.f.first("serial_number", "serial"),
			CredentialType: "x509_certificate",
			Subject:        l.f.get("common_name"),
			SANs:           l.dnsNames,
		}
		if is.Subject == "" && len(l.dnsNames) > 0 {
			is.Subject = l.dnsNames[0]
		}
		if rk := l.f.get("related_resource_kind"); (rk == "Issuer" || rk == "ClusterIssuer") && l.f.get("related_resource_name") != "" {
			is.Issuer = "cert-manager:" + strings.ToLower(rk) + "/" + l.f.get("related_resource_name")
		}
		if kind == "CertificateRequest" && ns != "" && name != "" {
			is.Requester = "k8s:certificaterequest/" + ns + "/" + name
		}
		ev.Issuance = is
		ev.Credential = schemas.Credential{ID: is.Credential, Type: "x509_certificate"}
		if is.Credential == "" {
			ev.Credential = schemas.Credential{}
		}
	}
	return ev, nil
}
