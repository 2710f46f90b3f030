//go:build unix

// Package spiretest runs a real SPIRE server and agents for tests: sqlite
// datastore and in-memory keys in a temporary folder, join-token node
// attestation and unix workload attestation, everything on loopback.
//
// The binaries (spire-server, spire-agent v1.13.3) are looked up in
// NHI_SPIRE_DIR, by default ${XDG_CACHE_HOME:-$HOME/.cache}/nhisentry/peers/spire-v1.13.3,
// where deploy/local/spire.sh builds them.
package spiretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

// Version is the SPIRE release the tests run against.
const Version = "v1.13.3"

// TrustDomain is the servers' trust domain.
const TrustDomain = "example.org"

// startTimeout bounds a server start and an agent's attestation.
const startTimeout = 60 * time.Second

// ErrNoBinaries says the SPIRE binaries are not built.
var ErrNoBinaries = errors.New("spire binaries not found (run deploy/local/spire.sh, or set NHI_SPIRE_DIR)")

// Dir is the folder with spire-server and spire-agent.
func Dir() string {
	if d := os.Getenv("NHI_SPIRE_DIR"); d != "" {
		return d
	}
	return peer.CacheDir("spire-" + Version)
}

// Server is a running spire-server.
type Server struct {
	// Socket is the admin API unix socket.
	Socket string
	// Entries and Agents are clients of the admin API, for assertions.
	Entries entryv1.EntryClient
	Agents  agentv1.AgentClient

	bin, agentBin string
	dir           string
	port          int
	proc          *process
	conn          *grpc.ClientConn
}

// StartServer starts a server from the binaries in binDir and waits until
// it is ready. Close stops it and removes its folder.
func StartServer(binDir string) (*Server, error) {
	s := &Server{bin: filepath.Join(binDir, "spire-server"), agentBin: filepath.Join(binDir, "spire-agent")}
	for _, b := range []string{s.bin, s.agentBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoBinaries, err)
		}
	}
	// A short folder name: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "spire")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	ports, err := peer.FreePorts(2)
	if err != nil {
		return err
	}
	s.port = ports[0]
	s.Socket = filepath.Join(s.dir, "api.sock")
	data := filepath.Join(s.dir, "data")
	conf := fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "INFO"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "join_token" { plugin_data {} }
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "%d"
}
`, s.port, s.Socket, TrustDomain, data, filepath.Join(data, "datastore.sqlite3"), ports[1])
	confPath := filepath.Join(s.dir, "server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	s.proc, err = startProcess(filepath.Join(s.dir, "server.log"), s.bin, "run", "-config", confPath)
	if err != nil {
		return err
	}
	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", ports[1])
	if err := s.proc.waitFor(startTimeout, func() bool { return httpOK(ready) }); err != nil {
		return fmt.Errorf("spire-server not ready: %w", err)
	}
	s.conn, err = grpc.NewClient("unix:"+s.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	s.Entries = entryv1.NewEntryClient(s.conn)
	s.Agents = agentv1.NewAgentClient(s.conn)
	return nil
}

// Close stops the server and removes its folder.
func (s *Server) Close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.proc != nil {
		s.proc.stop()
	}
	os.RemoveAll(s.dir)
}

// CLI runs a spire-server subcommand against the server's socket and
// returns its standard output.
func (s *Server) CLI(ctx context.Context, args ...string) (string, error) {
	args = append(args, "-socketPath", s.Socket)
	return output(ctx, s.bin, args...)
}

// Agent is a running spire-agent.
type Agent struct {
	// ID is the agent's SPIFFE id (spiffe://example.org/spire/agent/join_token/<token>).
	ID string
	// Socket is its Workload API socket.
	Socket string

	bin  string
	proc *process
}

// StartAgent starts an agent attested with a fresh join token and waits
// until the server lists it. The agent is stopped at the end of the test.
func (s *Server) StartAgent(tb testing.TB) *Agent {
	tb.Helper()
	a, err := s.startAgent()
	if a != nil {
		tb.Cleanup(a.proc.stop)
	}
	if err != nil {
		tb.Fatalf("start spire-agent: %v", err)
	}
	return a
}

var tokenLine = regexp.MustCompile(`(?m)^Token: (\S+)$`)

func (s *Server) startAgent() (*Agent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := s.CLI(ctx, "token", "generate", "-ttl", "600")
	if err != nil {
		return nil, fmt.Errorf("token generate: %w", err)
	}
	m := tokenLine.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("token generate printed no token: %q", out)
	}
	token := m[1]
	bundle, err := s.CLI(ctx, "bundle", "show")
	if err != nil {
		return nil, fmt.Errorf("bundle show: %w", err)
	}
	dir, err := os.MkdirTemp(s.dir, "agent")
	if err != nil {
		return nil, err
	}
	bundlePath := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundlePath, []byte(bundle), 0o600); err != nil {
		return nil, err
	}
	a := &Agent{
		ID:     fmt.Sprintf("spiffe://%s/spire/agent/join_token/%s", TrustDomain, token),
		Socket: filepath.Join(dir, "public", "api.sock"),
		bin:    s.agentBin,
	}
	// No admin socket: it may not share the Workload API socket's folder.
	conf := fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  trust_bundle_path = %q
  trust_domain = %q
  experimental { sync_interval = "1s" }
}
plugins {
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "join_token" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`, filepath.Join(dir, "data"), s.port, a.Socket, bundlePath, TrustDomain)
	confPath := filepath.Join(dir, "agent.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	a.proc, err = startProcess(filepath.Join(dir, "agent.log"), s.agentBin, "run", "-config", confPath, "-joinToken", token)
	if err != nil {
		return nil, err
	}
	id := &types.SPIFFEID{TrustDomain: TrustDomain, Path: "/spire/agent/join_token/" + token}
	attested := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := s.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{Id: id})
		return err == nil
	}
	if err := a.proc.waitFor(startTimeout, attested); err != nil {
		return a, fmt.Errorf("agent %s not attested: %w", a.ID, err)
	}
	return a, nil
}

// Exited is closed when the agent process has exited.
func (a *Agent) Exited() <-chan struct{} { return a.proc.done }

// Log is the end of the agent's log.
func (a *Agent) Log() string { return tail(a.proc.log()) }

// FetchX509 asks the agent's Workload API, as this process, for its
// X509-SVIDs and returns their SPIFFE ids.
func (a *Agent) FetchX509(ctx context.Context) ([]string, error) {
	out, err := output(ctx, a.bin, "api", "fetch", "x509", "-socketPath", a.Socket, "-timeout", "3s", "-output", "json")
	if err != nil {
		return nil, err
	}
	var resp struct {
		SVIDs []struct {
			SpiffeID string `json:"spiffe_id"`
		} `json:"svids"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("read fetch x509 output %q: %w", out, err)
	}
	ids := make([]string, 0, len(resp.SVIDs))
	for _, s := range resp.SVIDs {
		ids = append(ids, s.SpiffeID)
	}
	return ids, nil
}

// Selectors are the unix workload attestor's selectors that match this
// process (unix:uid:<uid>), for registration entries a test fetches with
// FetchX509.
func Selectors() []*types.Selector {
	return []*types.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}}
}

// process is a child in its own process group, logging to a file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	once    sync.Once
}

func startProcess(logPath, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = peer.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitFor polls ok until it holds, the process exits or timeout passes;
// the errors carry the end of the process's log.
func (p *process) waitFor(timeout time.Duration, ok func() bool) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%s); log:\n%s", filepath.Base(p.cmd.Path), p.cmd.ProcessState, tail(p.log()))
		case <-deadline:
			return fmt.Errorf("timed out after %s; log:\n%s", timeout, tail(p.log()))
		case <-tick.C:
		}
	}
	return nil
}

// stop kills the process group and waits for the process.
func (p *process) stop() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}

func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

func output(ctx context.Context, bin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %v: %w: %s", filepath.Base(bin), args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared is one server for all the tests of a test binary, started on
// first use; Main stops it. Without the binaries the test is skipped, or
// fails when CI=true.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.once.Do(func() { shared.srv, shared.err = StartServer(Dir()) })
	switch {
	case errors.Is(shared.err, ErrNoBinaries):
		peertest.Unavailable(tb, "SPIRE (deploy/local/spire.sh)", shared.err)
	case shared.err != nil:
		tb.Fatalf("start spire-server: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests and stops the shared server; use it in TestMain as
// os.Exit(spiretest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Close()
	}
	return code
}
