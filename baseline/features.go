package baseline

import (
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// An hour of an identity's activity is a point in a small feature space, and
// the builder describes where the identity's active hours lie in it (mean and
// covariance) so a detector can measure how far the current hour is from
// them (Mahalanobis distance, SPEC §5 "multivariate outlier").
//
// The features are the ones both sides can compute the same way: the builder
// from an HourRollup, the processor from the live Window. The rollup also
// holds bytes in and durations, and the window holds the hour's first uses of
// actions and peers, but each exists on one side only, so neither is a
// feature. The four that are:
//
//   - events: log1p(events in the hour), so a doubling is the same step at
//     any rate;
//   - denied share: denied / events;
//   - failure share: failures / events;
//   - bytes out per event: log1p(bytes out / events).
//
// The shares and the bytes per event are ratios, meaningful for a partial
// hour too; the event count of a partial hour is only a lower bound of the
// hour's (see detectors/outlier).
const NumFeatures = 4

// Indexes of the features in a Features vector.
const (
	FeatureEvents   = iota // log1p(events)
	FeatureDenied          // denied / events
	FeatureFailures        // failures / events
	FeatureBytesOut        // log1p(bytes out / events)
)

// NumPacked is the length of the packed upper triangle of a symmetric
// NumFeatures × NumFeatures matrix.
const NumPacked = NumFeatures * (NumFeatures + 1) / 2

// Features is an hour's activity as a point in feature space.
type Features [NumFeatures]float64

var featureNames = [NumFeatures]string{"events", "denied share", "failure share", "bytes out per event"}

// FeatureName is feature i's name as findings print it.
func FeatureName(i int) string { return featureNames[i] }

// FeatureValue turns the value x of feature i back into its natural unit:
// events, a share, bytes per event.
func FeatureValue(i int, x float64) float64 {
	if i == FeatureEvents || i == FeatureBytesOut {
		return math.Expm1(x)
	}
	return x
}

// HourFeatures is the feature vector of an hour with events events, of
// which denied were denied and failures failed, sending bytesOut bytes. The
// shares are capped at 1 (a row whose denied or failures exceed its events
// is inconsistent). An hour without events is the zero vector.
func HourFeatures(events, denied, failures, bytesOut uint64) Features {
	if events == 0 {
		return Features{}
	}
	n := float64(events)
	return Features{
		FeatureEvents:   math.Log1p(n),
		FeatureDenied:   min(float64(denied)/n, 1),
		FeatureFailures: min(float64(failures)/n, 1),
		FeatureBytesOut: math.Log1p(float64(bytesOut) / n),
	}
}

// Features is the rollup row's feature vector.
func (r *HourRollup) Features() Features {
	return HourFeatures(r.Events, r.Denied, r.Failures, r.BytesOut)
}

// Features is the window's feature vector: the same as that of the hour's
// rollup row once the hour is complete.
func (w Window) Features() Features {
	return HourFeatures(uint64(w.Count), uint64(w.Denied), uint64(w.Failures), w.BytesOut)
}

// FeatureRidge is the λ added to the covariance's diagonal before it is
// inverted. A feature an identity keeps constant (no denials ever, one
// response size) has zero variance, which makes the covariance singular and
// any change from the constant infinitely unlikely. With λ every feature's
// variance is at least 0.0025, its standard deviation at least 0.05: five
// points of a share, or about 5% of events or of bytes per event on the log
// scale. A constant feature then needs a change of about 0.29 (a denied
// share from 0 to 29%, or 1.33× the bytes per event) to cross the default
// threshold on its own (squared distance 33.4, χ²₄ at p = 10⁻⁶).
const FeatureRidge = 0.0025

// DefaultFeatureMinHours is how many active hours an identity needs before
// the builder computes its FeatureModel (BuildOptions.FeatureMinHours): two
// days of a busy service, and at least 12 hours per feature for the 10
// numbers of a 4-feature covariance.
const DefaultFeatureMinHours = 48

// FeatureModel is where an identity's active hours lie in feature space: the
// mean and, for display, the standard deviation of each feature over the
// active hours (silent hours have no shares), and the precision matrix
// (Σ + λI)⁻¹ the squared Mahalanobis distance of an hour x is computed with:
//
//	D² = (x − μ)ᵀ (Σ + λI)⁻¹ (x − μ)
//
// where Σ is the sample covariance (divisor n − 1) and λ Ridge
// (FeatureRidge). For an hour drawn from the identity's own (normal)
// distribution, D² follows a χ² distribution with NumFeatures degrees of
// freedom.
type FeatureModel struct {
	// Hours is the number of active hours the statistics cover.
	Hours int      `json:"hours"`
	Mean  Features `json:"mean"`
	SD    Features `json:"sd"`
	Ridge float64  `json:"ridge"`
	// Precision is the upper triangle of (Σ + λI)⁻¹, row by row: (0,0),
	// (0,1), … (0,k−1), (1,1), … (k−1,k−1).
	Precision [NumPacked]float64 `json:"precision"`
	// Residual is how far an active hour's events stray from the seasonal
	// rate, on the log scale: the root mean square over the active hours of
	// log1p(events) − log1p(Rate.Centre of the hour's hour of week). The
	// events feature's SD mixes the daily rhythm with hour-to-hour noise;
	// Residual is the noise alone, what a count compared with a seasonal
	// expectation (a cohort's, scaled by the identity's rhythm) is judged
	// against.
	Residual float64 `json:"residual"`
}

// packedIndex is the index of element (i, j) of a symmetric k × k matrix in
// its packed upper triangle.
func packedIndex(k, i, j int) int {
	if i > j {
		i, j = j, i
	}
	return i*k - i*(i-1)/2 + j - i
}

// Distance2 is the squared Mahalanobis distance of x from the model's mean.
func (f *FeatureModel) Distance2(x Features) float64 {
	var d Features
	for i := range d {
		d[i] = x[i] - f.Mean[i]
	}
	var q float64
	for i := range NumFeatures {
		for j := range NumFeatures {
			q += d[i] * f.Precision[packedIndex(NumFeatures, i, j)] * d[j]
		}
	}
	return q
}

// FeatureStats is a FeatureModel compacted for the cache (Model.Features):
// the mean, the residual and the precision matrix as float32, 60 bytes; the
// hours it covers are the Model's ActiveHours. Float32 keeps seven digits;
// the ridge bounds the precision matrix's condition number by (largest
// variance + λ)/λ, a few thousand for hourly data, so D² keeps about three.
type FeatureStats struct {
	Mean [NumFeatures]float32
	// Residual is FeatureModel.Residual.
	Residual float32
	// prec is the packed precision matrix; its diagonal is positive (at
	// least 1/(largest variance + λ)), so a zero prec[0] means no model.
	prec [NumPacked]float32
}

func (f *FeatureModel) stats() FeatureStats {
	s := FeatureStats{Residual: float32(f.Residual)}
	for i, m := range f.Mean {
		s.Mean[i] = float32(m)
	}
	for i, p := range f.Precision {
		s.prec[i] = float32(p)
	}
	return s
}

// Precision is element (i, j) of the precision matrix (Σ + λI)⁻¹.
func (s *FeatureStats) Precision(i, j int) float64 {
	return float64(s.prec[packedIndex(NumFeatures, i, j)])
}

// Deviation is x − μ.
func (s *FeatureStats) Deviation(x Features) Features {
	for i := range x {
		x[i] -= float64(s.Mean[i])
	}
	return x
}

// Contributions splits the squared distance of the deviation d into the
// terms dᵢ·(P d)ᵢ, one per feature, which sum to Quad(d). A term is negative
// when the other features' deviations make feature i's expected, so the
// largest terms name the features that make the hour unusual.
func (s *FeatureStats) Contributions(d Features) Features {
	var c Features
	for i := range NumFeatures {
		var pd float64
		for j := range NumFeatures {
			pd += s.Precision(i, j) * d[j]
		}
		c[i] = d[i] * pd
	}
	return c
}

// Quad is dᵀ P d for a deviation d: the squared Mahalanobis distance of the
// point μ + d.
func (s *FeatureStats) Quad(d Features) float64 {
	var q float64
	for _, c := range s.Contributions(d) {
		q += c
	}
	return q
}

// featureScratch is the working memory of featureModel.
type featureScratch struct {
	cols     [NumFeatures][]float64
	colViews [][]float64
	cov      mat.SymDense
	prec     mat.SymDense
	chol     mat.Cholesky
}

// featureModel computes the FeatureModel of the active hours (one row per
// hour, each with events, ascending) with their seasonal rate r; nil with
// fewer than minHours of them or when the statistics are not finite.
func (s *featureScratch) featureModel(hours []HourRollup, r *Rate, minHours int) *FeatureModel {
	n := len(hours)
	if n < minHours || n < 2 {
		return nil
	}
	for k := range s.cols {
		if cap(s.cols[k]) < n {
			s.cols[k] = make([]float64, n)
		}
		s.cols[k] = s.cols[k][:n]
	}
	for i := range hours {
		x := hours[i].Features()
		for k := range x {
			s.cols[k][i] = x[k]
		}
	}
	if s.colViews == nil {
		s.colViews = make([][]float64, NumFeatures)
	}
	copy(s.colViews, s.cols[:])
	f := &FeatureModel{Hours: n, Ridge: FeatureRidge}
	if !s.meanCovPrecision(s.colViews, FeatureRidge, f.Mean[:]) {
		return nil
	}
	var ss float64
	for i := range hours {
		res := s.cols[FeatureEvents][i] - math.Log1p(r.Centre[hourOfWeek(hours[i].Hour)])
		ss += res * res
	}
	f.Residual = math.Sqrt(ss / float64(n))
	for i := range NumFeatures {
		f.SD[i] = math.Sqrt(s.cov.At(i, i))
		for j := i; j < NumFeatures; j++ {
			f.Precision[packedIndex(NumFeatures, i, j)] = s.prec.At(i, j)
		}
	}
	return f
}

// meanCovPrecision sets mean to the column means of cols (k columns of n ≥ 2
// observations), s.cov to their sample covariance Σ (gonum stat, divisor
// n − 1) and s.prec to (Σ + ridge·I)⁻¹ (gonum mat, by Cholesky). It reports
// false when the inverse does not exist or a result is not finite.
//
// The covariance is computed pair by pair with stat.Covariance, which is
// stat.CovarianceMatrix without the copy of the data it makes.
func (s *featureScratch) meanCovPrecision(cols [][]float64, ridge float64, mean []float64) bool {
	k := len(cols)
	s.cov.Reset()
	s.cov.ReuseAsSym(k)
	for i := range k {
		mean[i] = stat.Mean(cols[i], nil)
		for j := i; j < k; j++ {
			s.cov.SetSym(i, j, stat.Covariance(cols[i], cols[j], nil))
		}
	}
	s.prec.Reset()
	s.prec.ReuseAsSym(k)
	for i := range k {
		for j := i; j < k; j++ {
			v := s.cov.At(i, j)
			if i == j {
				v += ridge
			}
			s.prec.SetSym(i, j, v)
		}
	}
	if !s.chol.Factorize(&s.prec) {
		return false
	}
	if err := s.chol.InverseTo(&s.prec); err != nil {
		return false
	}
	for i := range k {
		if math.IsNaN(mean[i]) || math.IsInf(mean[i], 0) {
			return false
		}
		for j := i; j < k; j++ {
			for _, v := range [2]float64{s.cov.At(i, j), s.prec.At(i, j)} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return false
				}
			}
		}
	}
	return true
}
