//go:build unix

// Package chpeer starts a private Debian ClickHouse server (18.16) for a
// test: its own temporary folder and free loopback ports, so a test may give
// it configuration the shared server must not have (a cluster, macros) or
// stop and restart it (fault tests) without disturbing anyone else. Without
// clickhouse-server the test is skipped on a laptop and fails under CI=true.
package chpeer

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

// startTimeout bounds one start; 18.16 is usually ready in a few seconds.
const startTimeout = 60 * time.Second

// Options shape the server.
type Options struct {
	// TCPPort is the native protocol port; 0 picks a free one. Set it when
	// other servers' configuration must name this one before it starts
	// (the shards of a cluster).
	TCPPort int
	// Config, when set, returns XML placed inside the server's <yandex>
	// element, e.g. <remote_servers> or <macros>. It is called once the
	// ports are chosen, so it can name the server's own address.
	Config func(s *Server) string
}

// Server is a running private clickhouse-server.
type Server struct {
	// Addr is the native protocol address, host:port.
	Addr string
	// TCPPort is Addr's port, HTTPPort the HTTP interface's and
	// InterserverPort the one replicas fetch parts from each other on.
	TCPPort, HTTPPort, InterserverPort int
	// Dir holds the configuration, data and logs.
	Dir string

	bin string
	mu  sync.Mutex
	// pid and exited belong to the running server; exited receives the
	// result of Wait, which one goroutine calls so a crash during start
	// shows at once.
	pid    int
	exited chan error
}

// Start launches a server and waits until it answers; the test's cleanup
// stops it and removes its folder.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := peertest.Binary(t, "clickhouse-server", "apt-get install clickhouse-server", "/usr/sbin/clickhouse-server")
	ports, err := peer.FreePorts(3)
	if err != nil {
		t.Fatalf("clickhouse ports: %v", err)
	}
	if opts.TCPPort != 0 {
		ports[0] = opts.TCPPort
	}
	s := &Server{
		Addr:     "127.0.0.1:" + strconv.Itoa(ports[0]),
		TCPPort:  ports[0],
		HTTPPort: ports[1],
		// Replicated tables stay read-only without it.
		InterserverPort: ports[2],
		Dir:             t.TempDir(),
		bin:             bin,
	}
	extra := ""
	if opts.Config != nil {
		extra = opts.Config(s)
	}
	if err := s.writeConfig(extra); err != nil {
		t.Fatalf("clickhouse config: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("clickhouse-server %s error log: %s", s.Addr, s.logTail())
		}
	})
	if err := s.start(); err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	return s
}

// Stop stops the server and waits for it to exit, keeping its data. It
// does nothing when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited == nil {
		return
	}
	peer.StopGroup(s.pid, 30*time.Second)
	<-s.exited
	s.exited = nil
}

// Restart starts the server again on the same ports and data, after Stop
// (or stops it first), and waits until it answers.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = peer.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ping := fmt.Sprintf("http://127.0.0.1:%d/ping", s.HTTPPort)
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("clickhouse-server exited during start (%v): %s", err, s.logTail())
		default:
		}
		if resp, err := http.Get(ping); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.pid, s.exited = cmd.Process.Pid, exited
				return nil
			}
		}
	}
	peer.StopGroup(cmd.Process.Pid, 5*time.Second)
	<-exited
	return fmt.Errorf("clickhouse-server not ready in %s: %s", startTimeout, s.logTail())
}

// logTail is the end of the server's error log, for start failures.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "log", "clickhouse-server.err.log"))
	if err != nil {
		return "no error log: " + err.Error()
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (s *Server) writeConfig(extra string) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o700); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/clickhouse-server.log</log>
        <errorlog>%[1]s/log/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <interserver_http_port>%[5]d</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>50</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
%[4]s
</yandex>
`, s.Dir, s.TCPPort, s.HTTPPort, extra, s.InterserverPort)
	users := `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.Dir, "config.xml"), []byte(config), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "users.xml"), []byte(users), 0o600)
}
