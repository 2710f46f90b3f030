// Package detectors owns the Detector seam: what a detector is given for each
// event (the Input: the event, the identity's baseline before the event, the
// current hour's counters) and how it reports (appending schemas.Finding).
// Built-in detectors live in subpackages (novelty, volume), user CEL rules in
// rules, and engine runs them all over each batch.
package detectors
