package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The OCSF Detection Finding (class 2004, category 2 Findings, schema 1.3.0)
// is the wire form of a Finding: what the findings topic, SIEMs and webhooks
// receive, so any OCSF-aware consumer reads nhisentry's findings without a
// mapping of its own. The mapping:
//
//	finding_info.uid               Finding.ID
//	finding_info.title, desc       Title, Explanation
//	finding_info.analytic          detector (type Behavioral) or rule (type Rule; uid "rules/<id>")
//	finding_info.attacks           Technique (MITRE ATT&CK)
//	finding_info.related_events    EventIDs
//	finding_info.first/last_seen_time, time   FirstSeen, LastSeen (ms since the epoch)
//	resources[0]                   Identity (uid, type = kind, name)
//	severity_id, severity          Severity; risk_score Score; count Count
//	anomaly_analyses               Analysis: the observation next to the baseline
//
// activity_id is 1 (Create) for a finding's first message (Revision 0) and
// 2 (Update) when a repeat raised the count of a finding already sent.
const (
	OCSFVersion           = "1.3.0"
	ocsfClassDetection    = 2004
	ocsfCategoryFindings  = 2
	ocsfActivityCreate    = 1
	ocsfActivityUpdate    = 2
	ocsfAnalyticRule      = 1
	ocsfAnalyticBehavior  = 2
	ocsfStatusNew         = 1
	ocsfRulePrefix        = "rules/"
	ocsfProductName       = "nhisentry"
	ocsfProductVendorName = "nhisentry project"
)

// DetectionFinding is the OCSF Detection Finding form of a Finding.
type DetectionFinding struct {
	ActivityID  int    `json:"activity_id"`
	CategoryUID int    `json:"category_uid"`
	ClassUID    int    `json:"class_uid"`
	TypeUID     int    `json:"type_uid"`
	Time        int64  `json:"time"`
	SeverityID  int    `json:"severity_id"`
	Severity    string `json:"severity"`
	StatusID    int    `json:"status_id"`
	Message     string `json:"message"`
	RiskScore   int    `json:"risk_score"`
	Count       int    `json:"count"`
	// Revision is nhisentry's message counter for the finding, outside the
	// OCSF schema (see Finding.Revision).
	Revision    int               `json:"x_nhisentry_revision"`
	Metadata    OCSFMetadata      `json:"metadata"`
	FindingInfo OCSFFindingInfo   `json:"finding_info"`
	Resources   []OCSFResource    `json:"resources"`
	Anomalies   []OCSFAnomalyInfo `json:"anomaly_analyses,omitempty"`
}

// OCSFMetadata names the producer.
type OCSFMetadata struct {
	Version string      `json:"version"`
	Product OCSFProduct `json:"product"`
}

// OCSFProduct is the product object.
type OCSFProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

// OCSFFindingInfo is the finding_info object.
type OCSFFindingInfo struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	Desc          string         `json:"desc"`
	FirstSeenTime int64          `json:"first_seen_time"`
	LastSeenTime  int64          `json:"last_seen_time"`
	Analytic      OCSFAnalytic   `json:"analytic"`
	Attacks       []OCSFAttack   `json:"attacks,omitempty"`
	RelatedEvents []OCSFEventRef `json:"related_events,omitempty"`
}

// OCSFAnalytic is the detector or rule that made the finding.
type OCSFAnalytic struct {
	UID    string `json:"uid"`
	Name   string `json:"name"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

// OCSFAttack is one MITRE ATT&CK reference.
type OCSFAttack struct {
	Technique OCSFTechnique `json:"technique"`
}

// OCSFTechnique is an ATT&CK technique.
type OCSFTechnique struct {
	UID string `json:"uid"`
}

// OCSFEventRef points at an evidence event.
type OCSFEventRef struct {
	UID string `json:"uid"`
}

// OCSFResource is the identity the finding is about.
type OCSFResource struct {
	UID  string `json:"uid"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// OCSFAnomalyInfo is one entry of anomaly_analyses: what was observed and
// the baseline it deviates from.
type OCSFAnomalyInfo struct {
	Anomalies []OCSFAnomaly `json:"anomalies"`
	Baselines []OCSFAnomaly `json:"baselines"`
}

// OCSFAnomaly is an observation (or a baseline) with its pattern.
type OCSFAnomaly struct {
	ObservationParameter string            `json:"observation_parameter"`
	ObservedPattern      string            `json:"observed_pattern,omitempty"`
	Observations         []OCSFObservation `json:"observations"`
}

// OCSFObservation is one observed value.
type OCSFObservation struct {
	Value string `json:"value"`
}

// OCSF returns the Detection Finding form of f.
func (f *Finding) OCSF() DetectionFinding {
	activity := ocsfActivityCreate
	if f.Revision > 0 {
		activity = ocsfActivityUpdate
	}
	analytic := OCSFAnalytic{UID: f.Detector, Name: f.Detector, TypeID: ocsfAnalyticBehavior, Type: "Behavioral"}
	if f.RuleID != "" {
		analytic = OCSFAnalytic{UID: ocsfRulePrefix + f.RuleID, Name: f.RuleID, TypeID: ocsfAnalyticRule, Type: "Rule"}
	}
	d := DetectionFinding{
		ActivityID: activity, CategoryUID: ocsfCategoryFindings, ClassUID: ocsfClassDetection,
		TypeUID: ocsfClassDetection*100 + activity, Time: ms(f.LastSeen.Time),
		SeverityID: f.Severity.Rank(), Severity: severityCaption(f.Severity), StatusID: ocsfStatusNew,
		Message: f.Explanation, RiskScore: f.Score, Count: max(f.Count, 1), Revision: f.Revision,
		Metadata: OCSFMetadata{Version: OCSFVersion, Product: OCSFProduct{Name: ocsfProductName, VendorName: ocsfProductVendorName}},
		FindingInfo: OCSFFindingInfo{
			UID: f.ID, Title: f.Title, Desc: f.Explanation, Analytic: analytic,
			FirstSeenTime: ms(f.FirstSeen.Time), LastSeenTime: ms(f.LastSeen.Time),
		},
		Resources: []OCSFResource{{UID: f.Identity.ID, Type: string(f.Identity.Kind), Name: f.Identity.Name}},
	}
	if f.Technique != "" {
		d.FindingInfo.Attacks = []OCSFAttack{{Technique: OCSFTechnique{UID: f.Technique}}}
	}
	for _, id := range f.EventIDs {
		d.FindingInfo.RelatedEvents = append(d.FindingInfo.RelatedEvents, OCSFEventRef{UID: id})
	}
	if a := f.Analysis; a.Observed != "" || a.Baseline != "" {
		d.Anomalies = []OCSFAnomalyInfo{{
			Anomalies: []OCSFAnomaly{{ObservationParameter: f.Detector, ObservedPattern: string(a.Pattern), Observations: []OCSFObservation{{Value: a.Observed}}}},
			Baselines: []OCSFAnomaly{{ObservationParameter: f.Detector, Observations: []OCSFObservation{{Value: a.Baseline}}}},
		}}
	}
	return d
}

// Finding maps a Detection Finding back, for consumers of the findings
// topic (the demo, tests). It reverses OCSF exactly for what OCSF produced.
func (d *DetectionFinding) Finding() (Finding, error) {
	if d.ClassUID != ocsfClassDetection {
		return Finding{}, fmt.Errorf("ocsf: class_uid %d is not a Detection Finding (%d)", d.ClassUID, ocsfClassDetection)
	}
	if len(d.Resources) == 0 {
		return Finding{}, fmt.Errorf("ocsf: finding %s names no resource", d.FindingInfo.UID)
	}
	fi := d.FindingInfo
	f := Finding{
		ID: fi.UID, Title: fi.Title, Explanation: fi.Desc, Score: d.RiskScore, Count: d.Count, Revision: d.Revision,
		Identity:  Identity{ID: d.Resources[0].UID, Kind: IdentityKind(d.Resources[0].Type), Name: d.Resources[0].Name},
		FirstSeen: At(time.UnixMilli(fi.FirstSeenTime)), LastSeen: At(time.UnixMilli(fi.LastSeenTime)),
		Detector: fi.Analytic.UID,
	}
	if rule, ok := strings.CutPrefix(fi.Analytic.UID, ocsfRulePrefix); ok {
		f.Detector, f.RuleID = "rule", rule
	}
	for _, s := range []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		if s.Rank() == d.SeverityID {
			f.Severity = s
		}
	}
	if len(fi.Attacks) > 0 {
		f.Technique = fi.Attacks[0].Technique.UID
	}
	for _, e := range fi.RelatedEvents {
		f.EventIDs = append(f.EventIDs, e.UID)
	}
	if len(d.Anomalies) > 0 {
		a := d.Anomalies[0]
		if len(a.Anomalies) > 0 && len(a.Anomalies[0].Observations) > 0 {
			f.Analysis.Pattern = Pattern(a.Anomalies[0].ObservedPattern)
			f.Analysis.Observed = a.Anomalies[0].Observations[0].Value
		}
		if len(a.Baselines) > 0 && len(a.Baselines[0].Observations) > 0 {
			f.Analysis.Baseline = a.Baselines[0].Observations[0].Value
		}
	}
	return f, nil
}

// ParseOCSF decodes a Detection Finding message into a Finding.
func ParseOCSF(b []byte) (Finding, error) {
	var d DetectionFinding
	if err := json.Unmarshal(b, &d); err != nil {
		return Finding{}, fmt.Errorf("ocsf: %w", err)
	}
	return d.Finding()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// severityCaption is OCSF's caption for a severity_id.
func severityCaption(s Severity) string {
	if s.Rank() == 0 {
		return "Unknown"
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}
