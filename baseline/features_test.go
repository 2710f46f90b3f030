package baseline

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/nhisentry/nhisentry/schemas"
)

// The window the cache counts online and the rollup row the builder reads
// give the same feature vector for the same hour.
func TestFeaturesSameFromRollupAndWindow(t *testing.T) {
	p := &Profile{Identity: role}
	var r HourRollup
	rng := rand.New(rand.NewPCG(1, 2))
	hour := t0.Add(5 * time.Hour)
	for i := range 137 {
		ev := event(hour.Add(time.Duration(i)*20*time.Second), "GET /x", "10.0.0.1")
		switch i % 11 {
		case 3:
			ev.Outcome.Result = schemas.ResultDenied
			r.Denied++
		case 4, 7:
			ev.Outcome.Result = schemas.ResultFailure
			r.Failures++
		}
		ev.BytesOut = uint64(rng.IntN(50_000))
		ev.BytesIn = 99 // not a feature
		r.Events++
		r.BytesOut += ev.BytesOut
		p.Observe(ev)
	}
	got, want := p.Window(hour).Features(), r.Features()
	if got != want {
		t.Fatalf("window features %v, rollup features %v", got, want)
	}
	n := float64(r.Events)
	exp := Features{math.Log1p(n), float64(r.Denied) / n, float64(r.Failures) / n, math.Log1p(float64(r.BytesOut) / n)}
	if got != exp {
		t.Fatalf("features %v, want %v", got, exp)
	}
	if (Window{}).Features() != (Features{}) {
		t.Error("an empty window is not the zero vector")
	}
	if f := HourFeatures(2, 5, 7, 0); f[FeatureDenied] != 1 || f[FeatureFailures] != 1 {
		t.Errorf("inconsistent row: shares %v not capped at 1", f)
	}
	for i, x := range exp {
		back := FeatureValue(i, x)
		want := []float64{n, float64(r.Denied) / n, float64(r.Failures) / n, float64(r.BytesOut) / n}[i]
		if math.Abs(back-want) > 1e-9*want {
			t.Errorf("%s: FeatureValue %v, want %v", FeatureName(i), back, want)
		}
	}
}

// A two-feature case worked by hand: x = 1 2 3 4, y = 2 4 5 9.
// Means 2.5 and 5; deviations (−1.5 −0.5 0.5 1.5) and (−3 −1 0 4); with
// divisor n − 1 = 3: var x = 5/3, var y = 26/3, cov = 11/3. With ridge 1/3
// the matrix is [[2, 11/3], [11/3, 9]], determinant 41/9, inverse
// (9/41)·[[9, −11/3], [−11/3, 2]] = [[81, −33], [−33, 18]]/41.
func TestMeanCovPrecisionByHand(t *testing.T) {
	x, y := []float64{1, 2, 3, 4}, []float64{2, 4, 5, 9}
	var s featureScratch
	mean := make([]float64, 2)
	if !s.meanCovPrecision([][]float64{x, y}, 1.0/3, mean) {
		t.Fatal("no inverse")
	}
	if mean[0] != 2.5 || mean[1] != 5 {
		t.Errorf("mean %v", mean)
	}
	wantCov := [2][2]float64{{5.0 / 3, 11.0 / 3}, {11.0 / 3, 26.0 / 3}}
	wantPrec := [2][2]float64{{81.0 / 41, -33.0 / 41}, {-33.0 / 41, 18.0 / 41}}
	for i := range 2 {
		for j := range 2 {
			if !near(s.cov.At(i, j), wantCov[i][j]) {
				t.Errorf("cov(%d,%d) = %v, want %v", i, j, s.cov.At(i, j), wantCov[i][j])
			}
			if math.Abs(s.prec.At(i, j)-wantPrec[i][j]) > 1e-12 {
				t.Errorf("precision(%d,%d) = %v, want %v", i, j, s.prec.At(i, j), wantPrec[i][j])
			}
		}
	}
	// The pairwise covariance is gonum's covariance matrix.
	var cm mat.SymDense
	stat.CovarianceMatrix(&cm, mat.NewDense(4, 2, []float64{1, 2, 2, 4, 3, 5, 4, 9}), nil)
	for i := range 2 {
		for j := range 2 {
			if !near(s.cov.At(i, j), cm.At(i, j)) {
				t.Errorf("cov(%d,%d) = %v, stat.CovarianceMatrix %v", i, j, s.cov.At(i, j), cm.At(i, j))
			}
		}
	}
}

// featureHistory is hours of a seasonal service: busier by day, about 1%
// denied, 2% failed, and responses of about 2 KB.
func featureHistory(hours int, seed uint64) *History {
	rng := rand.New(rand.NewPCG(seed, 7))
	h := &History{Identity: role}
	for i := range hours {
		at := mon.Add(time.Duration(i) * time.Hour)
		base := 40.0
		if hod := at.Hour(); hod >= 8 && hod < 20 {
			base = 200
		}
		n := uint64(base * math.Exp(rng.NormFloat64()*0.2))
		r := row(at, n)
		for range n {
			switch u := rng.Float64(); {
			case u < 0.01:
				r.Denied++
			case u < 0.03:
				r.Failures++
			}
			r.BytesOut += uint64(2000 * math.Exp(rng.NormFloat64()*0.3))
		}
		h.Hours = append(h.Hours, r)
	}
	return h
}

func TestBuildFeatures(t *testing.T) {
	if b := Build(featureHistory(DefaultFeatureMinHours-1, 1), BuildOptions{}); b.Features != nil {
		t.Fatalf("%d active hours gave a feature model", DefaultFeatureMinHours-1)
	}
	if b := Build(featureHistory(30, 1), BuildOptions{FeatureMinHours: 30}); b.Features == nil || b.Features.Hours != 30 {
		t.Fatalf("FeatureMinHours 30: %+v", b.Features)
	}
	h := featureHistory(600, 1)
	b := Build(h, BuildOptions{})
	f := b.Features
	if f == nil || f.Hours != 600 || f.Ridge != FeatureRidge {
		t.Fatalf("features %+v", f)
	}
	// The mean and spread are those of the rows' feature vectors.
	cols := make([][]float64, NumFeatures)
	for _, r := range h.Hours {
		x := r.Features()
		for k := range x {
			cols[k] = append(cols[k], x[k])
		}
	}
	for k := range NumFeatures {
		m, sd := stat.MeanStdDev(cols[k], nil)
		if !near(f.Mean[k], m) || math.Abs(f.SD[k]-sd) > 1e-9*sd {
			t.Errorf("%s: mean %v sd %v, want %v %v", FeatureName(k), f.Mean[k], f.SD[k], m, sd)
		}
	}
	// The residual is the spread of log1p(events) around the seasonal
	// centre of each hour's hour of week.
	var ss float64
	for _, r := range h.Hours {
		res := math.Log1p(float64(r.Events)) - math.Log1p(b.Rate.Centre[weekHour(time.Unix(r.Hour*3600, 0).UTC())])
		ss += res * res
	}
	if want := math.Sqrt(ss / 600); !near(f.Residual, want) || f.Residual >= f.SD[FeatureEvents] {
		t.Errorf("residual %v, want %v, below the events SD %v", f.Residual, want, f.SD[FeatureEvents])
	}
	if d := f.Distance2(f.Mean); d != 0 {
		t.Errorf("distance of the mean %v", d)
	}
	// The average squared distance of the hours the model was built from is
	// (n−1)/n · trace(P·Σ): just under k without the ridge, less with it
	// because the ridge outweighs the small variance of the shares.
	var sum, trace float64
	for _, r := range h.Hours {
		sum += f.Distance2(r.Features())
	}
	for i := range NumFeatures {
		for j := range NumFeatures {
			trace += f.Precision[packedIndex(NumFeatures, i, j)] * stat.Covariance(cols[j], cols[i], nil)
		}
	}
	if avg := sum / 600; math.Abs(avg-trace*599/600) > 1e-9 || avg >= NumFeatures {
		t.Errorf("mean squared distance %v, want %v", avg, trace*599/600)
	}
	// The cached model carries it in float32, with the same distances.
	m := newModel(b)
	s := m.Features()
	if s == nil || m.ActiveHours != 600 || !near(float64(s.Residual), f.Residual) && math.Abs(float64(s.Residual)-f.Residual) > 1e-6 {
		t.Fatalf("model features %+v", s)
	}
	for _, x := range []Features{h.Hours[3].Features(), {5, 0.6, 0.02, 9.9}, {1, 0, 0, 1}} {
		want := f.Distance2(x)
		d := s.Deviation(x)
		got := s.Quad(d)
		if math.Abs(got-want) > 1e-4*want+1e-6 {
			t.Errorf("float32 distance %v, float64 %v", got, want)
		}
		var c float64
		for _, v := range s.Contributions(d) {
			c += v
		}
		if math.Abs(c-got) > 1e-9*got {
			t.Errorf("contributions sum to %v, distance %v", c, got)
		}
	}
	if newModel(&Baseline{}).Features() != nil {
		t.Error("a baseline without features gave a model with features")
	}

	// It survives the stored JSON form.
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var back Baseline
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if *back.Features != *f {
		t.Errorf("JSON round trip: %+v, want %+v", back.Features, f)
	}
}

// A feature the identity keeps constant leaves the covariance singular; the
// ridge makes its precision 1/λ.
func TestConstantFeature(t *testing.T) {
	h := featureHistory(100, 3)
	for i := range h.Hours {
		h.Hours[i].Denied = 0
	}
	f := Build(h, BuildOptions{}).Features
	if f == nil {
		t.Fatal("no feature model for a constant feature")
	}
	if f.SD[FeatureDenied] != 0 || !near(f.Precision[packedIndex(NumFeatures, FeatureDenied, FeatureDenied)], 1/FeatureRidge) {
		t.Errorf("denied: sd %v precision %v, want 0 and %v", f.SD[FeatureDenied], f.Precision[packedIndex(NumFeatures, 1, 1)], 1/FeatureRidge)
	}
	for i := range NumFeatures {
		if i != FeatureDenied && f.Precision[packedIndex(NumFeatures, i, FeatureDenied)] != 0 {
			t.Errorf("precision(%d, denied) = %v, want 0", i, f.Precision[packedIndex(NumFeatures, i, FeatureDenied)])
		}
	}
}

func TestPackedIndex(t *testing.T) {
	seen := map[int]bool{}
	for i := range NumFeatures {
		for j := i; j < NumFeatures; j++ {
			k := packedIndex(NumFeatures, i, j)
			if seen[k] || k < 0 || k >= NumPacked || packedIndex(NumFeatures, j, i) != k {
				t.Fatalf("packedIndex(%d,%d) = %d", i, j, k)
			}
			seen[k] = true
		}
	}
}
