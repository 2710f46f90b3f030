package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/detectors/rules"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// repoRoot is the checkout, seen from this package's directory.
const repoRoot = ".."

// The container's metrics port and the endpoints probed on it.
const (
	metricsPort = 9464
	listenEnv   = ":9464"
)

// promtool runs promtool in dir and fails the test with its output when it
// reports a problem.
func promtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(peertest.Binary(t, "promtool", "deploy/local/peers.sh install"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// yamlDocs decodes every non-empty document of a YAML stream.
func yamlDocs(name string, b []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, len(docs)+1, err)
		}
		if len(n.Content) > 0 {
			docs = append(docs, &n)
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestYAMLFilesParse(t *testing.T) {
	templates := filepath.Join("helm", "nhisentry", "templates") // Go templates, YAML only once rendered
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p == templates:
			return fs.SkipDir
		case !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")):
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("found only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := yamlDocs(f, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) == 0 {
				t.Fatal("no YAML document")
			}
		})
	}
}

// --- Dockerfile -------------------------------------------------------------

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

type stage struct {
	image, name string
	body        []instruction
}

// image is what deploy/Dockerfile says about the image it builds.
type image struct {
	stages     []stage
	uid, gid   int64
	copied     map[string]bool // destinations of the final stage's COPYs
	entrypoint []string
	cmd        []string
	exposed    []string
}

// parseDockerfile splits a Dockerfile into instructions, joining
// continuation lines and dropping comments.
func parseDockerfile(b []byte) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// loadImage reads deploy/Dockerfile; TestDockerfile checks what it says.
func loadImage(t *testing.T) image {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	img := image{copied: map[string]bool{}}
	for _, in := range parseDockerfile(b) {
		if in.cmd == "FROM" {
			var f []string
			for _, w := range strings.Fields(in.args) {
				if !strings.HasPrefix(w, "--") {
					f = append(f, w)
				}
			}
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			img.stages = append(img.stages, st)
			continue
		}
		if len(img.stages) == 0 {
			continue // ARGs before the first FROM
		}
		last := &img.stages[len(img.stages)-1]
		last.body = append(last.body, in)
	}
	if len(img.stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	for _, in := range img.stages[len(img.stages)-1].body {
		switch in.cmd {
		case "USER":
			u, g, _ := strings.Cut(in.args, ":")
			img.uid, err = strconv.ParseInt(u, 10, 64)
			if err != nil {
				t.Fatalf("Dockerfile:%d: USER %q: want a numeric uid: %v", in.line, in.args, err)
			}
			if g != "" {
				if img.gid, err = strconv.ParseInt(g, 10, 64); err != nil {
					t.Fatalf("Dockerfile:%d: USER %q: want a numeric gid: %v", in.line, in.args, err)
				}
			}
		case "COPY":
			f := strings.Fields(in.args)
			img.copied[f[len(f)-1]] = true
		case "ENTRYPOINT", "CMD":
			var form []string
			if err := json.Unmarshal([]byte(in.args), &form); err != nil {
				t.Fatalf("Dockerfile:%d: %s %s: want the exec (JSON) form: %v", in.line, in.cmd, in.args, err)
			}
			if in.cmd == "CMD" {
				img.cmd = form
			} else {
				img.entrypoint = form
			}
		case "EXPOSE":
			img.exposed = append(img.exposed, strings.Fields(in.args)...)
		}
	}
	return img
}

// configPath is the --config argument of an argument list ("" if none).
func configPath(args []string) string {
	if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

func TestDockerfile(t *testing.T) {
	img := loadImage(t)
	if len(img.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(img.stages))
	}
	build, final := img.stages[0], img.stages[len(img.stages)-1]
	if !strings.HasPrefix(build.image, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.image)
	}
	builds := false
	for _, in := range build.body {
		builds = builds || in.cmd == "RUN" && strings.Contains(in.args, "CGO_ENABLED=0") &&
			strings.Contains(in.args, "go build") && strings.Contains(in.args, "./cmd/nhisentry")
	}
	if !builds {
		t.Error("no RUN in the build stage runs CGO_ENABLED=0 go build ./cmd/nhisentry")
	}
	if !strings.Contains(final.image, "distroless") && final.image != "scratch" {
		t.Errorf("final stage FROM %s, want distroless or scratch", final.image)
	}
	names := map[string]bool{}
	for _, st := range img.stages {
		for _, in := range st.body {
			if in.cmd == "ADD" && strings.Contains(in.args, "://") {
				t.Errorf("Dockerfile:%d: ADD of a URL (%s): download in a RUN with a checksum instead", in.line, in.args)
			}
			if in.cmd == "COPY" {
				for _, f := range strings.Fields(in.args) {
					if from, ok := strings.CutPrefix(f, "--from="); ok && !names[from] {
						t.Errorf("Dockerfile:%d: COPY --from=%s names no earlier stage", in.line, from)
					}
				}
			}
		}
		names[st.name] = true
	}
	if img.uid <= 0 || img.gid <= 0 {
		t.Errorf("final stage USER %d:%d, want a numeric non-root uid and gid", img.uid, img.gid)
	}
	if len(img.entrypoint) == 0 || !img.copied[img.entrypoint[0]] {
		t.Errorf("ENTRYPOINT %q: want the binary the final stage copies", img.entrypoint)
	}
	if len(img.cmd) == 0 || img.cmd[0] != "run" || configPath(img.cmd) == "" {
		t.Errorf("CMD %q, want run --config FILE", img.cmd)
	}
	if !slices.Contains(img.exposed, strconv.Itoa(metricsPort)) {
		t.Errorf("EXPOSE %v, want %d", img.exposed, metricsPort)
	}
}

// ignoredBy reports whether a .dockerignore pattern excludes p (slash
// separated, relative to the context) or one of its parent directories.
func ignoredBy(patterns []string, p string) bool {
	parts := strings.Split(p, "/")
	for _, pat := range patterns {
		for i := 1; i <= len(parts); i++ {
			if matchSegments(strings.Split(pat, "/"), parts[:i]) {
				return true
			}
		}
	}
	return false
}

// matchSegments matches path segments like Docker does: filepath.Match per
// segment, and ** for any number of segments.
func matchSegments(pat, parts []string) bool {
	if len(pat) == 0 {
		return len(parts) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if matchSegments(pat[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	ok, _ := filepath.Match(pat[0], parts[0])
	return ok && matchSegments(pat[1:], parts[1:])
}

// TestDockerignore checks that the build context keeps every file the
// image's build needs: the Go files and embedded files of every package of
// the module that cmd/nhisentry imports, go.mod, go.sum, and what the
// final stage copies from the sources.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: %q: exceptions are beyond this test's matcher", line)
		}
		if _, err := filepath.Match(line, ""); err != nil {
			t.Fatalf(".dockerignore: %q: %v", line, err)
		}
		patterns = append(patterns, strings.TrimPrefix(path.Clean(line), "/"))
	}
	// The matcher itself, on what the file means to exclude.
	for _, p := range []string{".git/config", "bin/nhisentry", "cmd/nhisentry/main_test.go", "cmd/nhisentry/testdata/mixed.ndjson"} {
		if !ignoredBy(patterns, p) {
			t.Errorf("%s is in the build context, want it excluded", p)
		}
	}

	cmd := exec.Command("go", "list", "-e", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/nhisentry")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var pkg struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || !pkg.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(pkg.GoFiles, pkg.EmbedFiles...) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	// Sources the final stage copies from the build stage's checkout.
	img := loadImage(t)
	workdir := ""
	for _, in := range img.stages[0].body {
		if in.cmd == "WORKDIR" {
			workdir = strings.TrimSuffix(in.args, "/") + "/"
		}
	}
	for _, in := range img.stages[len(img.stages)-1].body {
		if in.cmd != "COPY" || !strings.HasPrefix(in.args, "--from=") || workdir == "" {
			continue
		}
		for _, f := range strings.Fields(in.args) {
			if rel, ok := strings.CutPrefix(f, workdir); ok {
				needed = append(needed, rel)
			}
		}
	}
	if len(needed) < 50 {
		t.Fatalf("only %d files needed: %v", len(needed), needed)
	}
	for _, f := range needed {
		if ignoredBy(patterns, f) {
			t.Errorf(".dockerignore excludes %s, which the image's build needs", f)
		}
	}
}

// --- nhisentry configuration --------------------------------------------------

// nhiConfig is the part of nhisentry's configuration these checks read.
type nhiConfig struct {
	Kafka struct {
		Brokers []string `yaml:"brokers"`
		Inputs  []struct {
			Topic  string `yaml:"topic"`
			Format string `yaml:"format"`
		} `yaml:"inputs"`
		FindingsTopic   string `yaml:"findings_topic"`
		DeadLetterTopic string `yaml:"dead_letter_topic"`
	} `yaml:"kafka"`
	ClickHouse struct {
		Addr     string `yaml:"addr"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"clickhouse"`
	Detect struct {
		Rules []string `yaml:"rules"`
	} `yaml:"detect"`
}

// topics lists every topic a configuration reads or writes.
func (c nhiConfig) topics() []string {
	out := []string{c.Kafka.FindingsTopic, c.Kafka.DeadLetterTopic}
	for _, in := range c.Kafka.Inputs {
		out = append(out, in.Topic)
	}
	slices.Sort(out)
	return out
}

// unknownKeys lists the keys of cfg that the example configuration, which
// names every key (cmd/nhisentry loads it with unknown keys rejected), does
// not have at the same place.
func unknownKeys(at string, example, cfg any) []string {
	var out []string
	switch c := cfg.(type) {
	case map[string]any:
		ex, ok := example.(map[string]any)
		if !ok {
			return []string{at + " is not a section"}
		}
		if len(ex) == 0 {
			return nil // a free-form map in the example, like issuer_cas: {}
		}
		for _, k := range slices.Sorted(maps.Keys(c)) {
			sub := strings.TrimPrefix(at+"."+k, ".")
			if exv, ok := ex[k]; ok {
				out = append(out, unknownKeys(sub, exv, c[k])...)
			} else {
				out = append(out, sub)
			}
		}
	case []any:
		ex, ok := example.([]any)
		if !ok {
			return []string{at + " is not a list"}
		}
		// Items are checked against the union of the example items' keys.
		union := map[string]any{}
		for _, item := range ex {
			if m, ok := item.(map[string]any); ok {
				maps.Copy(union, m)
			}
		}
		if len(union) == 0 {
			return nil
		}
		for i, item := range c {
			out = append(out, unknownKeys(fmt.Sprintf("%s[%d]", at, i), union, item)...)
		}
	}
	return out
}

// checkConfig checks a configuration file shipped by a deploy file: only
// known keys, the fields the service requires, known input formats, no
// password, and rule files that exist in the container (inContainer).
func checkConfig(t *testing.T, where string, text []byte, inContainer func(string) bool) nhiConfig {
	t.Helper()
	var example, got any
	readYAML(t, filepath.Join("config", "example.yaml"), &example)
	if err := yaml.Unmarshal(text, &got); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for _, k := range unknownKeys("", example, got) {
		t.Errorf("%s: unknown configuration key %s (deploy/config/example.yaml names every key)", where, k)
	}
	var cfg nhiConfig
	if err := yaml.Unmarshal(text, &cfg); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(cfg.Kafka.Brokers) == 0 || len(cfg.Kafka.Inputs) == 0 || cfg.ClickHouse.Addr == "" {
		t.Errorf("%s: kafka.brokers, kafka.inputs and clickhouse.addr are required", where)
	}
	for _, in := range cfg.Kafka.Inputs {
		if _, err := formats.ByName(in.Format); err != nil {
			t.Errorf("%s: input %s: %v", where, in.Topic, err)
		}
	}
	if cfg.ClickHouse.Password != "" {
		t.Errorf("%s: clickhouse.password is set: secrets come from the environment or a mounted file", where)
	}
	if len(cfg.Detect.Rules) == 0 {
		t.Errorf("%s: detect.rules is empty: name at least the default pack", where)
	}
	for _, r := range cfg.Detect.Rules {
		if !inContainer(r) {
			t.Errorf("%s: rule file %s is neither in the image nor mounted", where, r)
		}
	}
	return cfg
}

// --- compose ----------------------------------------------------------------

type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		User        string            `yaml:"user"`
		ReadOnly    bool              `yaml:"read_only"`
		CapDrop     []string          `yaml:"cap_drop"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func TestCompose(t *testing.T) {
	dir := "compose"
	var c composeFile
	readYAML(t, filepath.Join(dir, "compose.yaml"), &c)
	for _, name := range []string{"redpanda", "clickhouse", "topics", "nhisentry"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	for _, name := range []string{"redpanda", "clickhouse"} {
		if hc := c.Services[name].Healthcheck; hc == nil || len(hc.Test) == 0 {
			t.Errorf("%s has no healthcheck, so nothing can wait for it", name)
		}
	}
	nhi := c.Services["nhisentry"]
	for dep, cond := range map[string]string{
		"redpanda": "service_healthy", "clickhouse": "service_healthy", "topics": "service_completed_successfully",
	} {
		if got := nhi.DependsOn[dep].Condition; got != cond {
			t.Errorf("nhisentry depends on %s with condition %q, want %q", dep, got, cond)
		}
	}

	img := loadImage(t)
	if nhi.Build == nil {
		t.Fatal("nhisentry has no build section")
	}
	if _, err := os.Stat(filepath.Join(dir, nhi.Build.Context, "go.mod")); err != nil {
		t.Errorf("build context %s is not the repository root: %v", nhi.Build.Context, err)
	}
	if got := filepath.Join(dir, nhi.Build.Context, nhi.Build.Dockerfile); got != filepath.Join(repoRoot, "deploy", "Dockerfile") {
		t.Errorf("build dockerfile %s, want deploy/Dockerfile", got)
	}
	if want := fmt.Sprintf("%d:%d", img.uid, img.gid); nhi.User != want {
		t.Errorf("nhisentry user %q, want the image's %q", nhi.User, want)
	}
	if !nhi.ReadOnly || !slices.Contains(nhi.CapDrop, "ALL") {
		t.Error("nhisentry: want read_only and cap_drop [ALL]")
	}
	if nhi.Environment["NHI_HTTP_LISTEN"] != listenEnv {
		t.Errorf("NHI_HTTP_LISTEN %q, want %q", nhi.Environment["NHI_HTTP_LISTEN"], listenEnv)
	}

	// The configuration is mounted where the image's CMD reads it.
	var configFile string
	for _, v := range nhi.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, configPath(img.cmd)) {
			configFile = filepath.Join(dir, src)
		}
	}
	if configFile == "" {
		t.Fatalf("no volume mounts a configuration at %s: %v", configPath(img.cmd), nhi.Volumes)
	}
	text, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkConfig(t, configFile, text, func(p string) bool { return img.copied[p] })

	ch := c.Services["clickhouse"].Environment
	if cfg.ClickHouse.Username != ch["CLICKHOUSE_USER"] || nhi.Environment["NHI_CLICKHOUSE_PASSWORD"] != ch["CLICKHOUSE_PASSWORD"] {
		t.Error("nhisentry's ClickHouse user or password differs from the clickhouse service's")
	}
	for _, addr := range append([]string{cfg.ClickHouse.Addr}, cfg.Kafka.Brokers...) {
		host, _, _ := strings.Cut(addr, ":")
		if _, ok := c.Services[host]; !ok {
			t.Errorf("configuration address %s names no service", addr)
		}
	}
	topics := strings.Fields(c.Services["topics"].Environment["TOPICS"])
	slices.Sort(topics)
	if !slices.Equal(topics, cfg.topics()) {
		t.Errorf("topics service creates %v, the configuration uses %v", topics, cfg.topics())
	}
}

// --- Kubernetes objects -------------------------------------------------------

// manifest is one Kubernetes object of a manifest file or rendered template.
type manifest struct {
	source string
	kind   string
	node   *yaml.Node
}

func parseManifests(t *testing.T, source string, b []byte) []manifest {
	t.Helper()
	docs, err := yamlDocs(source, b)
	if err != nil {
		t.Fatal(err)
	}
	var out []manifest
	for _, d := range docs {
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if err := d.Decode(&head); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if head.APIVersion == "" || head.Kind == "" {
			t.Fatalf("%s: an object without apiVersion or kind", source)
		}
		out = append(out, manifest{source: source, kind: head.Kind, node: d})
	}
	return out
}

func kinds(ms []manifest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.kind)
	}
	slices.Sort(out)
	return out
}

// object decodes the only object of kind into v; ok is false when there is
// none.
func object(t *testing.T, ms []manifest, kind string, v any) (ok bool) {
	t.Helper()
	for _, m := range ms {
		if m.kind != kind {
			continue
		}
		if ok {
			t.Fatalf("two objects of kind %s", kind)
		}
		if err := m.node.Decode(v); err != nil {
			t.Fatalf("%s: %s: %v", m.source, kind, err)
		}
		ok = true
	}
	return ok
}

type meta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type matchLabels struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   probe `yaml:"startupProbe"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

func (c container) env(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

type deployment struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Replicas int         `yaml:"replicas"`
		Selector matchLabels `yaml:"selector"`
		Template struct {
			Metadata meta `yaml:"metadata"`
			Spec     struct {
				ServiceAccountName           string `yaml:"serviceAccountName"`
				AutomountServiceAccountToken *bool  `yaml:"automountServiceAccountToken"`
				SecurityContext              struct {
					RunAsNonRoot   bool  `yaml:"runAsNonRoot"`
					RunAsUser      int64 `yaml:"runAsUser"`
					SeccompProfile struct {
						Type string `yaml:"type"`
					} `yaml:"seccompProfile"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// mounted returns the volume mounted at dir: its ConfigMap's or Secret's name.
func (d deployment) mounted(c container, dir string) (configMap, secret string) {
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			switch {
			case v.Name != m.Name:
			case v.ConfigMap != nil:
				return v.ConfigMap.Name, ""
			case v.Secret != nil:
				return "", v.Secret.SecretName
			}
		}
	}
	return "", ""
}

type service struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type configMap struct {
	Metadata meta              `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type secret struct {
	Metadata   meta              `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// checkWorkload checks the objects that run nhisentry, whichever way they
// were made: the Deployment against the image (non-root, read-only, probes
// on the metrics port, resources), the configuration and secret it mounts,
// and the labels by which the Service, PodDisruptionBudget, ServiceMonitor
// and NetworkPolicy find its pods. It returns the Deployment.
func checkWorkload(t *testing.T, ms []manifest, img image) deployment {
	t.Helper()
	var d deployment
	if !object(t, ms, "Deployment", &d) {
		t.Fatal("no Deployment")
	}
	pod := d.Spec.Template.Spec
	podLabels := d.Spec.Template.Metadata.Labels
	if sc := pod.SecurityContext; !sc.RunAsNonRoot || sc.RunAsUser != img.uid || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext %+v, want runAsNonRoot, runAsUser %d (the image's) and seccomp RuntimeDefault", sc, img.uid)
	}
	if a := pod.AutomountServiceAccountToken; a == nil || *a {
		t.Error("the pod mounts a service account token it does not use")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped", sc)
	}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("volume %s is mounted writable", m.Name)
		}
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v, want cpu and memory requests and a memory limit", c.Resources)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != metricsPort {
		t.Errorf("ports %+v, want metrics on %d", c.Ports, metricsPort)
	}
	if got := c.env("NHI_HTTP_LISTEN"); got != listenEnv {
		t.Errorf("NHI_HTTP_LISTEN %q, want %q", got, listenEnv)
	}
	for _, p := range []struct {
		name, path string
		probe      probe
	}{
		{"startup", "/healthz", c.StartupProbe}, {"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe},
	} {
		if g := p.probe.HTTPGet; g == nil || g.Path != p.path || g.Port != "metrics" {
			t.Errorf("%s probe %+v, want GET %s on port metrics", p.name, g, p.path)
		}
	}

	// The configuration file, from a mounted ConfigMap.
	cfgFile := configPath(c.Args)
	cmName, _ := d.mounted(c, path.Dir(cfgFile))
	var cm configMap
	if !object(t, ms, "ConfigMap", &cm) || cm.Metadata.Name != cmName || cm.Data[path.Base(cfgFile)] == "" {
		t.Fatalf("--config %s is not a key of the ConfigMap mounted at %s (%q)", cfgFile, path.Dir(cfgFile), cmName)
	}
	checkConfig(t, "ConfigMap "+cm.Metadata.Name, []byte(cm.Data[path.Base(cfgFile)]), func(p string) bool {
		return img.copied[p] || path.Dir(p) == path.Dir(cfgFile) && cm.Data[path.Base(p)] != ""
	})
	for name, text := range cm.Data {
		if name == path.Base(cfgFile) {
			continue
		}
		set, err := rules.Options{}.LoadData(name, []byte(text))
		if err != nil {
			t.Errorf("ConfigMap key %s: %v", name, err)
			continue
		}
		for _, r := range rules.RunTests(set) {
			if !r.OK() {
				t.Errorf("ConfigMap key %s: %s", name, r)
			}
		}
	}

	// The ClickHouse password, from a mounted Secret.
	pwFile := c.env("NHI_CLICKHOUSE_PASSWORD_FILE")
	_, secretName := d.mounted(c, path.Dir(pwFile))
	if pwFile == "" || secretName == "" {
		t.Errorf("NHI_CLICKHOUSE_PASSWORD_FILE %q is not in a mounted Secret", pwFile)
	}
	var s secret
	if object(t, ms, "Secret", &s) {
		if _, ok := s.StringData[path.Base(pwFile)]; s.Metadata.Name != secretName || !ok {
			t.Errorf("Secret %s (key %s) is not the one mounted (%s)", s.Metadata.Name, path.Base(pwFile), secretName)
		}
		if len(s.Data) > 0 {
			t.Error("Secret has base64 data: keep the shipped values readable (stringData) so no real one hides there")
		}
	}

	var sa struct {
		Metadata meta `yaml:"metadata"`
	}
	if object(t, ms, "ServiceAccount", &sa) && sa.Metadata.Name != pod.ServiceAccountName {
		t.Errorf("ServiceAccount %s, pod runs as %s", sa.Metadata.Name, pod.ServiceAccountName)
	}

	// Selectors.
	within := func(what string, sel, labels map[string]string) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%s, which the target does not have (%v)", what, k, v, labels)
			}
		}
	}
	within("Deployment", d.Spec.Selector.MatchLabels, podLabels)
	var svc service
	if !object(t, ms, "Service", &svc) {
		t.Fatal("no Service")
	}
	within("Service", svc.Spec.Selector, podLabels)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort != "metrics" {
		t.Errorf("Service ports %+v, want metrics → the container's metrics port", svc.Spec.Ports)
	}
	var pdb struct {
		Spec struct {
			MaxUnavailable any         `yaml:"maxUnavailable"`
			Selector       matchLabels `yaml:"selector"`
		} `yaml:"spec"`
	}
	if object(t, ms, "PodDisruptionBudget", &pdb) {
		within("PodDisruptionBudget", pdb.Spec.Selector.MatchLabels, podLabels)
		if pdb.Spec.MaxUnavailable == nil {
			t.Error("PodDisruptionBudget without maxUnavailable: a minAvailable on one replica blocks every drain")
		}
	}
	var sm struct {
		Spec struct {
			Selector          matchLabels `yaml:"selector"`
			NamespaceSelector struct {
				MatchNames []string `yaml:"matchNames"`
			} `yaml:"namespaceSelector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	if object(t, ms, "ServiceMonitor", &sm) {
		within("ServiceMonitor", sm.Spec.Selector.MatchLabels, svc.Metadata.Labels)
		if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Metadata.Namespace) {
			t.Errorf("ServiceMonitor looks in %v, the Service is in %s", sm.Spec.NamespaceSelector.MatchNames, svc.Metadata.Namespace)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v, want /metrics on port metrics", sm.Spec.Endpoints)
		}
	}
	var np struct {
		Spec struct {
			PodSelector matchLabels `yaml:"podSelector"`
			Ingress     []struct {
				Ports []struct {
					Port string `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	if object(t, ms, "NetworkPolicy", &np) {
		within("NetworkPolicy", np.Spec.PodSelector.MatchLabels, podLabels)
		if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port != "metrics" {
			t.Errorf("NetworkPolicy ingress %+v, want the metrics port only", np.Spec.Ingress)
		}
	}

	// One namespace for everything namespaced.
	for _, m := range ms {
		var o struct {
			Metadata meta `yaml:"metadata"`
		}
		if err := m.node.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if m.kind != "Namespace" && o.Metadata.Namespace != d.Metadata.Namespace {
			t.Errorf("%s %s is in namespace %q, the Deployment in %q", m.kind, o.Metadata.Name, o.Metadata.Namespace, d.Metadata.Namespace)
		}
	}
	return d
}

func TestKubernetesManifests(t *testing.T) {
	dir := "kubernetes"
	var k struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &k)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []manifest
	var listed []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		listed = append(listed, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, parseManifests(t, f, b)...)
	}
	slices.Sort(k.Resources)
	if !slices.Equal(k.Resources, listed) {
		t.Errorf("kustomization.yaml lists %v, the folder holds %v", k.Resources, listed)
	}
	want := []string{"ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor"}
	if got := kinds(ms); !slices.Equal(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
	d := checkWorkload(t, ms, loadImage(t))
	var ns struct {
		Metadata meta `yaml:"metadata"`
	}
	if object(t, ms, "Namespace", &ns) && ns.Metadata.Name != d.Metadata.Namespace {
		t.Errorf("Namespace %s, objects in %s", ns.Metadata.Name, d.Metadata.Namespace)
	}
	var s secret
	object(t, ms, "Secret", &s)
	for k, v := range s.StringData {
		if v != "CHANGE-ME" {
			t.Errorf("Secret key %s is %q: ship the placeholder CHANGE-ME only", k, v)
		}
	}
}

// --- Helm ---------------------------------------------------------------------

// The chart is rendered with text/template and the few Helm and sprig
// functions it uses, implemented here as Helm documents them, so no Helm is
// needed. A function the chart starts using without one here makes parsing
// fail. toYaml goes through JSON as Helm's does (numbers from values are
// float64 there too), but indents lists under their key where Helm does not;
// the YAML is the same.

type helmChart struct{ Name, Version, AppVersion string }
type helmRelease struct{ Name, Namespace, Service string }
type helmTemplate struct{ Name, BasePath string }

// helmFuncs returns the functions the chart may call; include executes
// templates of root.
func helmFuncs(root *template.Template) template.FuncMap {
	indent := func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	}
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b strings.Builder
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml":  toYAML,
		"indent":  indent,
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"quote":   func(v any) string { return strconv.Quote(fmt.Sprint(v)) },
		"default": func(def, v any) any {
			if empty(v) {
				return def
			}
			return v
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(substr, s string) bool { return strings.Contains(s, substr) },
		"sha256sum": func(s string) string {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		},
	}
}

// empty is sprig's: nil, zero numbers, false, "" and empty collections.
func empty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		return r.Len() == 0
	}
	return r.IsZero()
}

// toYAML is Helm's toYaml: JSON, then YAML, without the final newline.
func toYAML(v any) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return "", err
	}
	clearStyle(&n) // JSON's flow style and quotes, as YAML's block style
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func clearStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// helmValues reads values files in order, each merged over the previous
// ones, then set (like --set), and hands them to templates as Helm does:
// through JSON, so numbers are float64.
func helmValues(t *testing.T, files []string, set map[string]any) map[string]any {
	t.Helper()
	values := map[string]any{}
	for _, f := range files {
		var v map[string]any
		readYAML(t, f, &v)
		mergeValues(values, v)
	}
	mergeValues(values, set)
	j, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// mergeValues merges src into dst: maps key by key, anything else replaced.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		sub, ok := v.(map[string]any)
		if old, isMap := dst[k].(map[string]any); ok && isMap {
			mergeValues(old, sub)
			continue
		}
		dst[k] = v
	}
}

// renderChart renders every template of the chart in dir (file name →
// output), NOTES.txt included; files starting with _ only define templates.
func renderChart(dir string, values map[string]any, rel helmRelease) (map[string]string, error) {
	var meta struct {
		Name       string `yaml:"name"`
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil {
		return nil, err
	}
	base := meta.Name + "/templates"
	root := template.New("").Option("missingkey=error")
	root.Funcs(helmFuncs(root))
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := root.New(base + "/" + filepath.Base(f)).Parse(string(text)); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for _, f := range files {
		name := base + "/" + filepath.Base(f)
		if strings.HasPrefix(filepath.Base(f), "_") {
			continue
		}
		var buf strings.Builder
		err := root.ExecuteTemplate(&buf, name, map[string]any{
			"Values":   values,
			"Chart":    helmChart{Name: meta.Name, Version: meta.Version, AppVersion: meta.AppVersion},
			"Release":  rel,
			"Template": helmTemplate{Name: name, BasePath: base},
		})
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = buf.String()
	}
	return out, nil
}

func TestHelmChart(t *testing.T) {
	chart := filepath.Join("helm", "nhisentry")
	values := filepath.Join(chart, "values.yaml")
	all := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor"}
	tests := []struct {
		name     string
		release  helmRelease
		files    []string
		set      map[string]any
		wantErr  string
		kinds    []string
		fullname string
		image    string
		replicas int
		secret   string
	}{
		{
			name: "default", release: helmRelease{"nhisentry", "nhisentry", "Helm"}, files: []string{values},
			kinds: all, fullname: "nhisentry", image: "nhisentry:0.1.0", replicas: 1, secret: "nhisentry",
		},
		{
			name: "override", release: helmRelease{"prod", "security", "Helm"},
			files: []string{values, filepath.Join("testdata", "helm-values-override.yaml")},
			kinds: all, fullname: "prod-nhisentry", image: "registry.example.com/security/nhisentry:1.2.3", replicas: 3, secret: "prod-nhisentry",
		},
		{
			name: "existing-secret", release: helmRelease{"nhi", "nhisentry", "Helm"}, files: []string{values},
			set: map[string]any{
				"secret":              map[string]any{"create": false, "existingSecret": "nhisentry-credentials"},
				"serviceAccount":      map[string]any{"create": false},
				"serviceMonitor":      map[string]any{"enabled": false},
				"podDisruptionBudget": map[string]any{"enabled": false},
			},
			kinds: []string{"ConfigMap", "Deployment", "Service"}, fullname: "nhi-nhisentry", image: "nhisentry:0.1.0", replicas: 1,
			secret: "nhisentry-credentials",
		},
		{
			name: "no-secret-named", release: helmRelease{"nhi", "nhisentry", "Helm"}, files: []string{values},
			set:     map[string]any{"secret": map[string]any{"create": false}},
			wantErr: "secret.existingSecret is required when secret.create is false",
		},
	}
	img := loadImage(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := renderChart(chart, helmValues(t, tc.files, tc.set), tc.release)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if notes := out["NOTES.txt"]; !strings.Contains(notes, tc.fullname) {
				t.Errorf("NOTES.txt does not name the release's objects:\n%s", notes)
			}
			delete(out, "NOTES.txt")
			var ms []manifest
			var rendered strings.Builder
			for _, name := range slices.Sorted(maps.Keys(out)) {
				if strings.TrimSpace(out[name]) == "" {
					continue
				}
				source := "nhisentry/templates/" + name
				ms = append(ms, parseManifests(t, source, []byte(out[name]))...)
				fmt.Fprintf(&rendered, "---\n# Source: %s\n%s\n", source, strings.Trim(out[name], "\n"))
			}
			if got := kinds(ms); !slices.Equal(got, tc.kinds) {
				t.Errorf("kinds %v, want %v", got, tc.kinds)
			}
			d := checkWorkload(t, ms, img)
			c := d.Spec.Template.Spec.Containers[0]
			if d.Metadata.Name != tc.fullname || d.Metadata.Namespace != tc.release.Namespace || c.Image != tc.image || d.Spec.Replicas != tc.replicas {
				t.Errorf("Deployment %s/%s runs %d of %s, want %s/%s, %d of %s",
					d.Metadata.Namespace, d.Metadata.Name, d.Spec.Replicas, c.Image, tc.release.Namespace, tc.fullname, tc.replicas, tc.image)
			}
			if _, secret := d.mounted(c, "/etc/nhisentry/secrets"); secret != tc.secret {
				t.Errorf("mounted Secret %q, want %q", secret, tc.secret)
			}
			golden := filepath.Join("testdata", "helm-"+tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(rendered.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if rendered.String() != string(want) {
				t.Errorf("render differs from %s (go test ./deploy -run TestHelmChart -update rewrites it):\n%s", golden, rendered.String())
			}
		})
	}
	// values.yaml ships no secret value.
	var v struct {
		Secret struct {
			Data map[string]string `yaml:"data"`
		} `yaml:"secret"`
	}
	readYAML(t, values, &v)
	for k, val := range v.Secret.Data {
		if val != "" {
			t.Errorf("values.yaml: secret.data.%s has a value: ship an empty placeholder", k)
		}
	}
}

// --- metric names -------------------------------------------------------------

// codeMetrics returns every metric name in the repository's non-test Go
// files: each "nhi_…" string literal is one.
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(nhi_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in the code: %v", len(names), names)
	}
	return names
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMetric = regexp.MustCompile(`\b(?:nhi|go|process)_[a-zA-Z0-9_]+|\bup\b`)
)

// unknownMetrics lists the metric names expr uses that nhisentry does not
// expose: its own nhi_ metrics (histograms with their _bucket, _sum and
// _count series), the Go and process collectors' go_ and process_ metrics,
// and Prometheus' up. It fails when expr names no metric at all.
func unknownMetrics(t *testing.T, code map[string]bool, where, expr string) []string {
	t.Helper()
	used := promMetric.FindAllString(promString.ReplaceAllString(expr, `""`), -1)
	if len(used) == 0 {
		t.Errorf("%s: %q names no metric", where, expr)
	}
	var out []string
	for _, m := range used {
		base := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !code[m] && !code[base] && m != "up" && !strings.HasPrefix(m, "go_") && !strings.HasPrefix(m, "process_") {
			out = append(out, m)
		}
	}
	return out
}

// --- Grafana ------------------------------------------------------------------

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RawSQL     string      `json:"rawSql"`
		QueryType  string      `json:"queryType"`
		RefID      string      `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// The dashboard's datasources are template variables, so an import or
// provisioning picks the instances.
var (
	promDS = datasource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}
	chDS   = datasource{Type: "grafana-clickhouse-datasource", UID: "${DS_CLICKHOUSE}"}
)

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "nhisentry.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("nhisentry.json: %v", err)
	}
	var flat []panel
	for _, p := range d.Panels {
		flat = append(flat, p)
		flat = append(flat, p.Panels...)
	}
	return d, flat
}

// grafanaVars stands in for the dashboard's variables when its queries run
// outside Grafana.
var grafanaVars = regexp.MustCompile(`\$\{?(\w+)\}?`)

func expandVars(t *testing.T, q string, vals map[string]string) string {
	t.Helper()
	return grafanaVars.ReplaceAllStringFunc(q, func(m string) string {
		name := grafanaVars.FindStringSubmatch(m)[1]
		v, ok := vals[name]
		if !ok {
			t.Errorf("query uses unknown variable %s: %s", m, q)
		}
		return v
	})
}

func TestGrafanaDashboard(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard without uid or title")
	}
	vars := map[string]string{}
	code := codeMetrics(t)
	for _, v := range d.Templating.List {
		vars[v.Type+" "+v.Name] = fmt.Sprint(v.Query)
		if v.Type == "query" {
			for _, m := range unknownMetrics(t, code, "variable "+v.Name, v.Definition) {
				t.Errorf("variable %s: metric %s is not in the code", v.Name, m)
			}
		}
	}
	for _, want := range []string{"datasource DS_PROMETHEUS", "datasource DS_CLICKHOUSE", "query job", "textbox database"} {
		if _, ok := vars[want]; !ok {
			t.Errorf("no %s variable", want)
		}
	}
	if vars["datasource DS_PROMETHEUS"] != promDS.Type || vars["datasource DS_CLICKHOUSE"] != chDS.Type {
		t.Errorf("datasource variables %v, want types %s and %s", vars, promDS.Type, chDS.Type)
	}

	ids := map[int]string{}
	var promQueries, sqlQueries int
	for _, p := range panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || *p.Datasource != promDS && *p.Datasource != chDS {
			t.Errorf("panel %q: datasource %v, want %v or %v", p.Title, p.Datasource, promDS, chDS)
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || *q.Datasource != *p.Datasource {
				t.Errorf("panel %q query %s: datasource %v, want the panel's", p.Title, q.RefID, q.Datasource)
			}
			switch *p.Datasource {
			case promDS:
				promQueries++
				for _, m := range unknownMetrics(t, code, p.Title, q.Expr) {
					t.Errorf("panel %q: metric %s is not in the code", p.Title, m)
				}
			case chDS:
				sqlQueries++
				if q.RawSQL == "" || q.QueryType != "table" && q.QueryType != "timeSeries" {
					t.Errorf("panel %q: want raw SQL as a table or time series, got %q as %q", p.Title, q.RawSQL, q.QueryType)
				}
			}
		}
	}
	if promQueries < 20 || sqlQueries < 3 {
		t.Errorf("%d Prometheus and %d ClickHouse queries: the dashboard lost panels", promQueries, sqlQueries)
	}
}

// TestGrafanaPromQL has promtool parse every Prometheus query of the
// dashboard, written as recording rules with the variables filled in.
func TestGrafanaPromQL(t *testing.T) {
	_, panels := loadDashboard(t)
	vars := map[string]string{"job": "nhisentry", "__rate_interval": "5m", "__interval": "1m"}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rs []rule
	for _, p := range panels {
		for _, q := range p.Targets {
			if q.Expr != "" {
				rs = append(rs, rule{Record: fmt.Sprintf("panel_%d_%s", p.ID, q.RefID), Expr: expandVars(t, q.Expr, vars)})
			}
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rs}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "dashboard.yaml")
}

// grafanaMacro is the ClickHouse datasource's $__timeFilter(column).
var grafanaMacro = regexp.MustCompile(`\$__timeFilter\((\w+)\)`)

// TestGrafanaClickHouseQueries runs every ClickHouse query of the dashboard
// on a real ClickHouse with nhisentry's schema, the variables and macros
// expanded as the Grafana plugin does.
func TestGrafanaClickHouseQueries(t *testing.T) {
	_, panels := loadDashboard(t)
	store := chstoretest.Open(t)
	to := time.Now()
	from := to.Add(-24 * time.Hour)
	for _, p := range panels {
		for _, q := range p.Targets {
			if q.RawSQL == "" {
				continue
			}
			t.Run(p.Title, func(t *testing.T) {
				sql := grafanaMacro.ReplaceAllStringFunc(q.RawSQL, func(m string) string {
					col := grafanaMacro.FindStringSubmatch(m)[1]
					return fmt.Sprintf("%s >= toDateTime(%d) AND %s <= toDateTime(%d)", col, from.Unix(), col, to.Unix())
				})
				sql = expandVars(t, sql, map[string]string{"database": store.Database()})
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				rows, err := store.Conn().Query(ctx, sql)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				defer rows.Close()
				for rows.Next() { // reading the rows runs the whole query
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
			})
		}
	}
}

// --- alerting rules -----------------------------------------------------------

type alertRules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertingRules(t *testing.T) {
	var rs alertRules
	readYAML(t, filepath.Join("prometheus", "alerts.yaml"), &rs)
	code := codeMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			if alerts[r.Alert] || !strings.HasPrefix(r.Alert, "Nhi") {
				t.Errorf("alert %q: want a unique name starting with Nhi", r.Alert)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			for _, m := range unknownMetrics(t, code, r.Alert, r.Expr) {
				t.Errorf("%s: metric %s is not in the code", r.Alert, m)
			}
		}
	}
	for _, want := range []string{"NhiDown", "NhiConsumerLagHigh", "NhiDecodeErrorRatioHigh", "NhiOutputFailing",
		"NhiOutputBackpressure", "NhiWriteErrors", "NhiBaselineRebuildFailing"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	// Every alert has a unit test where it fires and one where it stays quiet.
	var ut struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Cases []struct {
				Alert     string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join("prometheus", "alerts_test.yaml"), &ut)
	if !slices.Equal(ut.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("alerts_test.yaml tests %v, want alerts.yaml", ut.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range ut.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert] = true
			} else {
				quiet[c.Alert] = true
			}
		}
	}
	for a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: alerts_test.yaml needs a case where it fires and one where it does not", a)
		}
	}
}

func TestAlertingRulesPromtool(t *testing.T) {
	promtool(t, "prometheus", "check", "rules", "alerts.yaml")
	promtool(t, "prometheus", "test", "rules", "alerts_test.yaml")
}
