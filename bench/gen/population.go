package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	account     = "111122223333"
	trustDomain = "prod.example.org"
	cluster     = "default" // the Vault decoder's default cluster for kubernetes-auth identities
)

// Activity profiles over the 168 hours of a UTC week (Monday 00:00 first).
const (
	profFlat = iota
	profBusiness
	numProfiles
)

// Role kinds: a long-running service, or a job that runs hourly or nightly;
// a scripted role's traffic comes from its scenario only.
const (
	roleService = iota
	roleHourly
	roleNightly
	roleScripted
)

var namespaces = []string{
	"payments", "orders", "inventory", "shipping", "billing", "catalog", "search",
	"checkout", "ledger", "fraud", "notifications", "identity", "accounts",
	"pricing", "reporting", "recommendations", "media", "support", "loyalty", "analytics",
}

var saNames = []string{
	"api", "worker", "gateway", "db-proxy", "scheduler", "consumer", "frontend",
	"cache", "grpc", "sync", "exporter", "webhook",
}

var subResources = []string{"items", "refunds", "events", "status", "history", "lines", "notes", "attachments"}

// workload is a mesh identity: it calls a few fixed peers and serves routes.
type workload struct {
	ns, sa, spiffe string
	key            []byte
	host           string // service host name
	net            [3]byte
	hosts          []byte // replica host octets inside net
	port           int
	grpc           bool
	httpUA, grpcUA string
	rate           float64
	shift          int
	routes         []route
	edges          []edge
	edgeCum        []float64
}

type route struct {
	method     string
	prefix     string // path before the id, or the whole path
	suffix     string // path after the id
	id         uint8  // 0: no id segment, 1: numeric id, 2: UUID
	query      string
	req, resp  float64 // mean bytes
	latency    float64 // mean ms
	statusCode int64
}

type edge struct {
	peer   int
	routes []int
	cum    []float64
}

// awsAction is one CloudTrail eventName of one service.
type awsAction struct {
	source   string // service prefix, e.g. "s3"
	name     string
	readOnly bool
	data     bool // data event (S3 objects, DynamoDB items, SQS messages)
	global   bool // logged in us-east-1 whatever the caller's region
	errCode  string
}

var actions = []awsAction{
	{"s3", "GetObject", true, true, false, "AccessDenied"},
	{"s3", "PutObject", false, true, false, "AccessDenied"},
	{"s3", "HeadObject", true, true, false, "AccessDenied"},
	{"s3", "DeleteObject", false, true, false, "AccessDenied"},
	{"dynamodb", "GetItem", true, true, false, "AccessDeniedException"},
	{"dynamodb", "PutItem", false, true, false, "AccessDeniedException"},
	{"dynamodb", "Query", true, true, false, "AccessDeniedException"},
	{"dynamodb", "UpdateItem", false, true, false, "AccessDeniedException"},
	{"sqs", "SendMessage", false, true, false, "AccessDenied"},
	{"sqs", "ReceiveMessage", false, true, false, "AccessDenied"},
	{"sqs", "DeleteMessage", false, true, false, "AccessDenied"},
	{"kms", "Decrypt", true, false, false, "AccessDeniedException"},
	{"kms", "GenerateDataKey", true, false, false, "AccessDeniedException"},
	{"secretsmanager", "GetSecretValue", true, false, false, "AccessDenied"},
	{"sts", "AssumeRole", true, false, false, "AccessDenied"},
	// Actions no normal role uses; the attacks do.
	{"sts", "GetCallerIdentity", true, false, false, "AccessDenied"},
	{"s3", "ListBuckets", true, false, false, "AccessDenied"},
	{"s3", "GetBucketPolicy", true, false, false, "AccessDenied"},
	{"s3", "PutBucketPolicy", false, false, false, "AccessDenied"},
	{"s3", "GetBucketAcl", true, false, false, "AccessDenied"},
	{"iam", "ListUsers", true, false, true, "AccessDenied"},
	{"iam", "ListRoles", true, false, true, "AccessDenied"},
	{"iam", "GetAccountAuthorizationDetails", true, false, true, "AccessDenied"},
	{"iam", "ListAttachedRolePolicies", true, false, true, "AccessDenied"},
	{"iam", "ListAccessKeys", true, false, true, "AccessDenied"},
	{"iam", "CreateUser", false, false, true, "AccessDenied"},
	{"iam", "CreateAccessKey", false, false, true, "AccessDenied"},
	{"iam", "AttachRolePolicy", false, false, true, "AccessDenied"},
	{"iam", "PutRolePolicy", false, false, true, "AccessDenied"},
	{"ec2", "DescribeInstances", true, false, false, "Client.UnauthorizedOperation"},
	{"ec2", "DescribeSecurityGroups", true, false, false, "Client.UnauthorizedOperation"},
	{"ec2", "DescribeSnapshots", true, false, false, "Client.UnauthorizedOperation"},
	{"ec2", "CreateKeyPair", false, false, false, "Client.UnauthorizedOperation"},
	{"ec2", "RunInstances", false, false, false, "Client.UnauthorizedOperation"},
	{"secretsmanager", "ListSecrets", true, false, false, "AccessDenied"},
	{"kms", "ListKeys", true, false, false, "AccessDeniedException"},
	{"kms", "CreateGrant", false, false, false, "AccessDeniedException"},
	{"lambda", "ListFunctions20150331", true, false, false, "AccessDeniedException"},
	{"ssm", "GetParameters", true, false, false, "AccessDeniedException"},
	{"organizations", "DescribeOrganization", true, false, true, "AccessDeniedException"},
	{"cloudtrail", "DescribeTrails", true, false, false, "AccessDeniedException"},
	// A CI pipeline's deploy steps.
	{"ecr", "GetAuthorizationToken", true, false, false, "AccessDeniedException"},
	{"ecr", "PutImage", false, false, false, "AccessDeniedException"},
	{"eks", "DescribeCluster", true, false, false, "AccessDeniedException"},
	{"cloudformation", "DescribeStacks", true, false, false, "AccessDenied"},
}

var actionIndex = func() map[string]int {
	m := make(map[string]int, len(actions))
	for i, a := range actions {
		m[a.source+":"+a.name] = i
	}
	return m
}()

func act(name string) int {
	i, ok := actionIndex[name]
	if !ok {
		panic("gen: unknown action " + name)
	}
	return i
}

// role is an AWS IAM role used through STS sessions.
type role struct {
	name, arn, principalID, id string
	key                        []byte
	app                        string
	net                        [3]byte
	hosts                      []byte
	via                        string // AWS service that calls on the role's behalf, or ""
	ua                         string
	sessStyle                  int // 0 Go SDK, 1 boto3, 2 Java SDK (web identity); 3 EC2 instance profile
	instance                   string
	region                     string
	vpce                       string
	acts                       []int // indexes into actions
	cum                        []float64
	kind                       int
	runHour, runMinute         int
	runLen                     time.Duration
	period, phase              int64 // session length and offset, ns
	rate                       float64
	shift                      int
	seed                       uint64
	bucket, prefix, table      string
	queueName, kmsKey, secret  string
	assumeTarget               string
}

// apiKey is a Kong consumer's key-auth credential.
type apiKey struct {
	credID, consumerID, username, id string
	key                              []byte
	consumerCreated                  int64
	net                              [3]byte
	hosts                            []byte
	ua                               string
	uses                             []keyRoute
	cum                              []float64
	rate                             float64
	shift                            int
}

type keyRoute struct {
	route      int // index into kongRoutes
	method     string
	sub        string // sub-resource after the id, "" for none
	list       bool   // collection GET with a page query
	req, resp  float64
	latency    float64
	statusCode int64
}

type kongService struct {
	name, id, host string
	port           int64
	created        int64
}

type kongRoute struct {
	name, id, path string
	service        int
	created        int64
}

// vaultClient is a Kubernetes service account authenticating to Vault.
type vaultClient struct {
	ns, sa, role, entityID, saUID, display string
	key                                    []byte
	net                                    [3]byte
	hosts                                  []byte
	paths                                  []string
	ttl                                    int64 // token ttl, seconds
	operator                               bool  // a person's OIDC-login entity, not a service account
	rate                                   float64
	shift                                  int
	seed                                   uint64
}

type population struct {
	workloads []workload
	roles     []role
	keys      []apiKey
	services  []kongService
	kroutes   []kongRoute
	vault     []vaultClient
	profiles  [numProfiles][168]float64
	wsID      string
	kmsMount  string
}

// lognormal returns a log-normal factor with median 1.
func lognormal(r *rand.Rand, sigma float64) float64 { return math.Exp(sigma * r.NormFloat64()) }

func baseRate(r *rand.Rand, median float64) float64 {
	f := lognormal(r, 1.0)
	return median * min(max(f, 0.03), 30)
}

func pickCum(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, x)
	return min(i, len(cum)-1)
}

func cumulative(w []float64) []float64 {
	c := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		c[i] = s
	}
	return c
}

func randUUID(r *rand.Rand) string { return uuidString(r.Uint64(), r.Uint64()) }

func hostOctets(r *rand.Rand, n int) []byte {
	seen := map[byte]bool{}
	var hs []byte
	for len(hs) < n {
		h := byte(2 + r.IntN(252))
		if !seen[h] {
			seen[h] = true
			hs = append(hs, h)
		}
	}
	return hs
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func buildProfiles() [numProfiles][168]float64 {
	var p [numProfiles][168]float64
	for how := range 168 {
		day, h := how/24, how%24
		weekend := day >= 5
		// Services: a gentle diurnal swing, a little less at weekends.
		f := 1 + 0.3*math.Cos(2*math.Pi*float64(h-15)/24)
		if weekend {
			f *= 0.8
		}
		p[profFlat][how] = f
		// API clients: business hours.
		var b float64
		switch {
		case h >= 8 && h < 18:
			b = 2.6
		case h == 7 || h == 18 || h == 19:
			b = 1.0
		default:
			b = 0.15
		}
		if weekend {
			b = min(b, 0.35) * 0.6
		}
		p[profBusiness][how] = b
	}
	for i := range p {
		s := 0.0
		for _, x := range p[i] {
			s += x
		}
		for j := range p[i] {
			p[i][j] *= 168 / s
		}
	}
	return p
}

// hourOfWeek is the hour since Monday 00:00 UTC of the unix time t (ns).
func hourOfWeek(t int64) int {
	h := t / int64(time.Hour) // hours since the epoch, a Thursday
	return int((h + 72) % 168)
}

func buildPopulation(cfg Config) *population {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x706f70756c617465)) // "populate"
	p := &population{profiles: buildProfiles()}
	p.wsID = randUUID(r)
	median := cfg.EventsPerIdentityHour
	p.buildWorkloads(r, cfg.Workloads, median)
	p.buildRoles(r, cfg.Roles, median)
	p.buildKong(r, cfg.APIKeys, median)
	p.buildVault(r, cfg.VaultClients, median)
	return p
}

func (p *population) buildWorkloads(r *rand.Rand, n int, median float64) {
	combos := make([][2]string, 0, len(namespaces)*len(saNames))
	for _, ns := range namespaces {
		for _, sa := range saNames {
			combos = append(combos, [2]string{ns, sa})
		}
	}
	r.Shuffle(len(combos), func(i, j int) { combos[i], combos[j] = combos[j], combos[i] })
	httpUAs := []string{"Go-http-client/1.1", "okhttp/4.12.0", "python-requests/2.31.0", "Apache-HttpClient/4.5.14 (Java/17.0.11)", "axios/1.6.8", "Go-http-client/2.0"}
	grpcUAs := []string{"grpc-go/1.64.0", "grpc-java-netty/1.63.0", "grpc-python/1.62.2"}
	popularity := make([]float64, n)
	for i := range n {
		c := combos[i%len(combos)]
		ns, sa := c[0], c[1]
		if k := i / len(combos); k > 0 {
			sa += "-" + strconv.Itoa(k+1)
		}
		w := workload{
			ns: ns, sa: sa,
			spiffe: "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa,
			host:   sa + "." + ns + ".svc.cluster.local",
			net:    [3]byte{10, byte(64 + i/256), byte(i % 256)},
			hosts:  hostOctets(r, 2+r.IntN(3)),
			grpc:   r.IntN(4) == 0,
			httpUA: pick(r, httpUAs),
			grpcUA: pick(r, grpcUAs),
			rate:   baseRate(r, median),
		}
		w.key = []byte(w.spiffe)
		w.port = pick(r, []int{8080, 8080, 9080, 3000, 5000})
		if w.grpc {
			w.port = 50051
		}
		if r.IntN(5) == 0 {
			w.shift = r.IntN(5) - 2
		}
		w.routes = makeRoutes(r, ns, sa, w.grpc)
		p.workloads = append(p.workloads, w)
		popularity[i] = lognormal(r, 1.2)
	}
	popCum := cumulative(popularity)
	for i := range p.workloads {
		w := &p.workloads[i]
		if n < 2 {
			break
		}
		k := min(2+r.IntN(4), n-1)
		seen := map[int]bool{i: true}
		var ew []float64
		for len(w.edges) < k {
			j := pickCum(r, popCum)
			if seen[j] {
				continue
			}
			seen[j] = true
			peer := &p.workloads[j]
			nr := min(2+r.IntN(5), len(peer.routes))
			perm := r.Perm(len(peer.routes))[:nr]
			rw := make([]float64, nr)
			for x := range rw {
				rw[x] = lognormal(r, 1)
			}
			w.edges = append(w.edges, edge{peer: j, routes: perm, cum: cumulative(rw)})
			ew = append(ew, lognormal(r, 1))
		}
		w.edgeCum = cumulative(ew)
	}
}

func singular(s string) string {
	switch {
	case strings.HasSuffix(s, "ies"):
		return s[:len(s)-3] + "y"
	case strings.HasSuffix(s, "s"):
		return s[:len(s)-1]
	}
	return s
}

func title(s string) string {
	var b strings.Builder
	up := true
	for _, c := range s {
		if c == '-' {
			up = true
			continue
		}
		if up && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b.WriteRune(c)
	}
	return b.String()
}

func makeRoutes(r *rand.Rand, ns, sa string, grpc bool) []route {
	n := 4 + r.IntN(5)
	res := ns
	var rs []route
	if grpc {
		svc := ns + ".v1." + title(singular(ns)) + "Service"
		verbs := []string{"Get", "List", "Create", "Update", "Delete", "Search", "Watch", "BatchGet"}
		for _, v := range verbs[:n] {
			noun := title(singular(ns))
			if v == "List" || v == "Search" || v == "BatchGet" {
				noun = title(ns)
			}
			rs = append(rs, route{method: "POST", prefix: "/" + svc + "/" + v + noun,
				req: 80 + 400*r.Float64(), resp: 200 + 3000*r.Float64(), latency: 2 + 30*r.Float64(), statusCode: 200})
		}
		return rs
	}
	sub := pick(r, subResources)
	cands := []route{
		{method: "GET", prefix: "/v1/" + res + "/", id: 1},
		{method: "GET", prefix: "/v1/" + res, query: "?limit=50"},
		{method: "POST", prefix: "/v1/" + res, statusCode: 201},
		{method: "PUT", prefix: "/v1/" + res + "/", id: 1},
		{method: "GET", prefix: "/v1/" + res + "/", id: 1, suffix: "/" + sub},
		{method: "POST", prefix: "/v1/" + res + "/", id: 1, suffix: "/" + sub, statusCode: 201},
		{method: "DELETE", prefix: "/v1/" + res + "/", id: 1, statusCode: 204},
		{method: "GET", prefix: "/internal/" + res + "/", id: 2, suffix: "/status"},
		{method: "GET", prefix: "/v2/" + res + "/", id: 2},
	}
	if sa == "webhook" {
		cands[2] = route{method: "POST", prefix: "/hooks/" + res, statusCode: 202}
	}
	for _, x := range r.Perm(len(cands))[:n] {
		c := cands[x]
		if c.statusCode == 0 {
			c.statusCode = 200
		}
		switch c.method {
		case "GET", "DELETE":
			c.req = 0
		default:
			c.req = 150 + 1500*r.Float64()
		}
		if c.statusCode == 204 {
			c.resp = 0
		} else {
			c.resp = 150 + 4000*r.Float64()
		}
		c.latency = 3 + 60*r.Float64()
		rs = append(rs, c)
	}
	return rs
}

func (p *population) buildRoles(r *rand.Rand, n int, median float64) {
	svcSuffixes := []string{"api", "worker", "etl", "ingest", "exporter", "sync", "indexer", "processor"}
	jobSuffixes := map[int][]string{roleHourly: {"hourly-sync", "hourly-rollup", "hourly-export"}, roleNightly: {"nightly-report", "nightly-backup", "nightly-compaction"}}
	used := map[string]bool{}
	for i := range n {
		kind := roleService
		switch x := r.IntN(10); {
		case x == 0:
			kind = roleHourly
		case x == 1:
			kind = roleNightly
		}
		var name, app string
		for try := 0; ; try++ {
			app = pick(r, namespaces)
			suf := pick(r, svcSuffixes)
			if kind != roleService {
				suf = pick(r, jobSuffixes[kind])
			}
			name = app + "-" + suf
			if try > 20 {
				name += "-" + strconv.Itoa(i)
			}
			if !used[name] {
				used[name] = true
				break
			}
		}
		p.addRole(r, name, app, kind, median)
	}
	for i := range p.roles {
		if n > 1 {
			j := (i + 1 + r.IntN(n-1)) % n
			p.roles[i].assumeTarget = p.roles[j].name
		}
	}
}

// addRole appends a role with the given name, application and kind, drawing
// the rest of it from r; i is its index, which places its network.
func (p *population) addRole(r *rand.Rand, name, app string, kind int, median float64) *role {
	i := len(p.roles)
	uas := []string{
		"aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64",
		"Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.131",
		"aws-sdk-java/2.25.60 Linux/5.10.219-208.866.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/adaptive",
	}
	vias := []string{"athena.amazonaws.com", "glue.amazonaws.com", "firehose.amazonaws.com"}
	regions := []string{"us-east-1", "us-east-1", "us-east-1", "us-east-1", "us-east-1", "us-east-1", "us-east-1", "eu-west-1", "eu-west-1", "us-west-2"}
	ro := role{
		name: name, app: app, kind: kind,
		arn:         "arn:aws:iam::" + account + ":role/" + name,
		id:          "aws:role/" + account + "/" + name,
		principalID: awsID("AROA", r.Uint64(), 17),
		net:         [3]byte{10, byte(20 + i/256), byte(i % 256)},
		hosts:       hostOctets(r, 1+r.IntN(4)),
		region:      pick(r, regions),
		rate:        baseRate(r, median),
		seed:        r.Uint64(),
	}
	ro.key = []byte(ro.id)
	ro.sessStyle = r.IntN(4)
	ro.ua = uas[min(ro.sessStyle, 2)]
	if ro.sessStyle == 3 {
		ro.ua = uas[r.IntN(len(uas))]
		ro.instance = "i-0" + string(appendHex(nil, r.Uint64(), 16))
		ro.period = int64(6 * time.Hour)
	} else {
		ro.period = int64(time.Hour)
	}
	ro.phase = -r.Int64N(ro.period)
	ro.vpce = "vpce-0" + string(appendHex(nil, r.Uint64(), 16))
	if kind == roleService && r.IntN(12) == 0 {
		ro.via = pick(r, vias)
	}
	if r.IntN(5) == 0 {
		ro.shift = r.IntN(5) - 2
	}
	switch kind {
	case roleHourly:
		ro.runMinute = r.IntN(60)
		ro.runLen = time.Duration(1+r.IntN(4)) * time.Minute
	case roleNightly:
		ro.runHour = r.IntN(5)
		ro.runMinute = r.IntN(60)
		ro.runLen = time.Duration(5+r.IntN(16)) * time.Minute
	}
	purpose := pick(r, []string{"exports", "data", "artifacts", "raw", "reports", "archive"})
	ro.bucket = "acme-" + app + "-" + purpose + "-prod"
	ro.prefix = pick(r, []string{"exports", "incoming", "daily", "events", "snapshots"})
	ro.table = app + "-" + pick(r, []string{"records", "state", "sessions", "index", "ledger"})
	ro.queueName = app + "-" + pick(r, []string{"events", "jobs", "notifications", "dlq"})
	ro.kmsKey = "arn:aws:kms:" + ro.region + ":" + account + ":key/" + randUUID(r)
	ro.secret = "arn:aws:secretsmanager:" + ro.region + ":" + account + ":secret:" + app + "/" + pick(r, []string{"db-credentials", "api-token", "signing-key"}) + "-" + awsID("", r.Uint64(), 6)
	ro.acts, ro.cum = roleRepertoire(r)
	p.roles = append(p.roles, ro)
	return &p.roles[len(p.roles)-1]
}

// roleRepertoire draws 3–8 actions from a few services with their weights.
func roleRepertoire(r *rand.Rand) ([]int, []float64) {
	var acts []int
	var w []float64
	add := func(name string, weight float64) {
		i := act(name)
		if slices.Contains(acts, i) {
			return
		}
		acts = append(acts, i)
		w = append(w, weight*lognormal(r, 0.8))
	}
	s3 := []string{"s3:GetObject", "s3:PutObject", "s3:HeadObject", "s3:DeleteObject"}
	ddb := []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	sqs := []string{"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"}
	primary, other := s3, ddb
	if r.IntN(2) == 0 {
		primary, other = ddb, s3
	}
	for _, x := range r.Perm(len(primary))[:2+r.IntN(2)] {
		add(primary[x], 1)
	}
	if r.Float64() < 0.6 {
		add("kms:Decrypt", 0.5)
	}
	if slices.Contains(acts, act("s3:PutObject")) && r.Float64() < 0.5 {
		add("kms:GenerateDataKey", 0.3)
	}
	if r.Float64() < 0.4 {
		for _, x := range r.Perm(len(sqs))[:1+r.IntN(3)] {
			add(sqs[x], 0.7)
		}
	}
	if r.Float64() < 0.3 {
		add(other[r.IntN(len(other))], 0.5)
	}
	if r.Float64() < 0.2 {
		add("secretsmanager:GetSecretValue", 0.04)
	}
	if r.Float64() < 0.1 {
		add("sts:AssumeRole", 0.04)
	}
	for len(acts) < 3 {
		add(other[r.IntN(len(other))], 0.5)
	}
	if len(acts) > 8 {
		acts, w = acts[:8], w[:8]
	}
	return acts, cumulative(w)
}

func (p *population) buildKong(r *rand.Rand, n int, median float64) {
	apis := []string{"payments", "orders", "catalog", "customers", "shipping", "reports", "webhooks", "search"}
	created := int64(1672531200) // 2023-01-01
	for _, a := range apis {
		s := kongService{name: a + "-api", id: randUUID(r), host: a + "-api." + a + ".svc.cluster.local",
			port: 8080, created: created + r.Int64N(3e7)}
		p.services = append(p.services, s)
		si := len(p.services) - 1
		for v := 1; v <= 1+r.IntN(2); v++ {
			vs := "v" + strconv.Itoa(v)
			p.kroutes = append(p.kroutes, kongRoute{name: a + "-" + vs, id: randUUID(r),
				path: "/api/" + vs + "/" + a, service: si, created: s.created + r.Int64N(1e6)})
		}
	}
	companies := []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne", "soylent", "vandelay", "piedpiper", "oscorp", "nakatomi"}
	purposes := []string{"integration", "sync", "mobile", "reporting", "webhooks", "erp", "crm", "billing"}
	uas := []string{"python-requests/2.31.0", "okhttp/4.12.0", "Go-http-client/2.0", "axios/1.6.8", "Java-http-client/17.0.11", "curl/8.5.0", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "Faraday v2.9.0"}
	used := map[string]bool{}
	for i := range n {
		var name string
		for try := 0; ; try++ {
			name = pick(r, companies) + "-" + pick(r, purposes)
			if try > 20 {
				name += "-" + strconv.Itoa(i)
			}
			if !used[name] {
				used[name] = true
				break
			}
		}
		k := apiKey{
			credID: randUUID(r), consumerID: randUUID(r), username: name,
			consumerCreated: created + r.Int64N(6e7),
			hosts:           hostOctets(r, 1+r.IntN(3)),
			ua:              pick(r, uas),
			rate:            baseRate(r, median),
		}
		if r.IntN(10) < 3 {
			k.net = [3]byte{10, byte(40 + i/256), byte(i % 256)}
		} else {
			k.net = [3]byte{100, byte(64 + i/256), byte(i % 256)}
		}
		if r.IntN(3) == 0 {
			k.shift = pick(r, []int{-8, -5, -5, 1, 2})
		}
		k.id = "apikey:kong:" + k.credID
		k.key = []byte(k.id)
		nu := 1 + r.IntN(3)
		var w []float64
		for _, x := range r.Perm(len(p.kroutes))[:nu] {
			for range 1 + r.IntN(2) {
				u := keyRoute{route: x, method: "GET", statusCode: 200}
				switch r.IntN(4) {
				case 0:
					u.list = true
				case 1:
					u.sub = pick(r, subResources)
				case 2:
					if r.IntN(2) == 0 {
						u.method, u.statusCode = "POST", 201
					}
				}
				if u.method == "POST" {
					u.req = 300 + 2000*r.Float64()
				}
				u.resp = 400 + 6000*r.Float64()
				if u.list {
					u.resp *= 4
				}
				u.latency = 10 + 120*r.Float64()
				k.uses = append(k.uses, u)
				w = append(w, lognormal(r, 1))
			}
		}
		k.cum = cumulative(w)
		p.keys = append(p.keys, k)
	}
}

func (p *population) buildVault(r *rand.Rand, n int, median float64) {
	for i := range n {
		var v vaultClient
		if i < len(p.workloads) {
			w := &p.workloads[i]
			v.ns, v.sa, v.net, v.hosts = w.ns, w.sa, w.net, w.hosts
		} else {
			v.ns = pick(r, namespaces)
			v.sa = "vault-client-" + strconv.Itoa(i)
			v.net = [3]byte{10, byte(96 + i/256), byte(i % 256)}
			v.hosts = hostOctets(r, 1+r.IntN(3))
		}
		p.addVault(r, v, median)
	}
}

// addVault completes v, whose namespace, service account and network are
// set, drawing the rest from r, and appends it.
func (p *population) addVault(r *rand.Rand, v vaultClient, median float64) *vaultClient {
	secrets := []string{"db", "api-keys", "tls", "config", "stripe", "smtp", "redis", "kafka"}
	v.role = v.ns + "-" + strings.SplitN(v.sa, "-", 2)[0]
	v.entityID = randUUID(r)
	v.saUID = randUUID(r)
	v.display = "kubernetes-" + v.ns + "-" + v.sa
	v.key = []byte(fmt.Sprintf("k8s:sa/%s/%s/%s", cluster, v.ns, v.sa))
	for _, x := range r.Perm(len(secrets))[:2+r.IntN(3)] {
		v.paths = append(v.paths, v.ns+"/"+secrets[x])
	}
	v.ttl = pick(r, []int64{3600 * 4, 3600 * 12, 3600 * 24})
	v.rate = baseRate(r, median)
	v.seed = r.Uint64()
	p.vault = append(p.vault, v)
	return &p.vault[len(p.vault)-1]
}
