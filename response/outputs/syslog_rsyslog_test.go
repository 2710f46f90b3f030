package outputs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/peer/peertest"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
)

// TestSyslogRsyslog delivers the golden batch to a private rsyslogd (Debian's
// rsyslog and rsyslog-openssl) over TLS and plain TCP, in both framings and
// both payloads, and checks what rsyslog received: the raw message is the
// golden message byte for byte, and rsyslog's RFC 5424 parser found the same
// PRI, timestamp, hostname, app-name, procid, msgid, structured data and
// message.
func TestSyslogRsyslog(t *testing.T) {
	bin := rsyslogd(t)
	dir := t.TempDir()
	cert := securetest.SelfSigned(t)
	certFile, keyFile := cert.CertFile, cert.KeyFile
	cases := []struct {
		format, framing string
		tls             bool
		port            int
	}{
		{format: "cef", framing: "octet", tls: true},
		{format: "leef", framing: "lf", tls: true},
		{format: "leef", framing: "octet"},
		{format: "cef", framing: "lf"},
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, rsyslogGlobal, dir, certFile, keyFile)
	for i := range cases {
		c := &cases[i]
		c.port = freePort(t)
		input := `type="imptcp" supportOctetCountedFraming="on"`
		if c.tls {
			input = `type="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon"`
		}
		fmt.Fprintf(&conf, rsyslogCase, i, filepath.Join(dir, strconv.Itoa(i)), input, c.port)
	}
	startRsyslog(t, bin, dir, conf.String(), cases[0].port, cases[1].port, cases[2].port, cases[3].port)

	for i, c := range cases {
		transport := "tcp"
		if c.tls {
			transport = "tls"
		}
		t.Run(transport+"-"+c.format+"-"+c.framing, func(t *testing.T) {
			cfg := syslogTestConfig(c.format, c.framing)
			cfg.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
			if c.tls {
				cfg.TLS = secure.TLS{Enabled: true, CAFile: certFile}
			}
			out := newTestSyslog(t, cfg)
			if err := out.Deliver(context.Background(), syslogTestFindings()); err != nil {
				t.Fatal(err)
			}
			want, err := splitSyslogFrames(readSyslogGolden(t, c.format, c.framing), c.framing)
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(dir, strconv.Itoa(i))
			raw := waitLines(t, base+".raw", len(want))
			fields := waitLines(t, base+".json", len(want))
			for j, w := range want {
				if raw[j] != w {
					t.Errorf("message %d: rsyslog received\n%q\nwant\n%q", j, raw[j], w)
				}
				checkRsyslogFields(t, j, fields[j], w)
			}
		})
	}
}

// rsyslogGlobal is the private instance's global part: work directory, TLS
// files, and control characters (LEEF's tabs) kept as received.
const rsyslogGlobal = `global(workDirectory="%[1]s" maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off"
       defaultNetstreamDriverCAFile="%[2]s"
       defaultNetstreamDriverCertFile="%[2]s"
       defaultNetstreamDriverKeyFile="%[3]s")
module(load="imptcp")
module(load="imtcp")
template(name="raw" type="list") { property(name="rawmsg") constant(value="\n") }
template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
`

// rsyslogCase is one input with its ruleset writing the raw message and the
// parsed fields to two files.
const rsyslogCase = `ruleset(name="case%[1]d") {
  action(type="omfile" file="%[2]s.raw" template="raw")
  action(type="omfile" file="%[2]s.json" template="fields")
}
input(%[3]s address="127.0.0.1" port="%[4]d" ruleset="case%[1]d")
`

// rsyslogFields is one line of the fields template.
type rsyslogFields struct {
	PRI            string `json:"pri"`
	Timestamp      string `json:"timestamp"`
	Hostname       string `json:"hostname"`
	AppName        string `json:"app_name"`
	ProcID         string `json:"procid"`
	MsgID          string `json:"msgid"`
	StructuredData string `json:"structured_data"`
	Msg            string `json:"msg"`
}

// checkRsyslogFields compares what rsyslog parsed from message j with what
// the golden message says.
func checkRsyslogFields(t *testing.T, j int, line, golden string) {
	t.Helper()
	var got rsyslogFields
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("message %d: %v in %q", j, err, line)
	}
	m, err := parseSyslog(golden)
	if err != nil {
		t.Fatal(err)
	}
	sd := golden[strings.IndexByte(golden, '[') : len(golden)-len(m.msg)-1]
	want := rsyslogFields{
		PRI: strconv.Itoa(m.pri), Hostname: m.hostname, AppName: m.appName,
		ProcID: m.procID, MsgID: m.msgID, StructuredData: sd, Msg: m.msg,
	}
	gotTime, err := time.Parse(time.RFC3339Nano, got.Timestamp)
	wantTime, _ := time.Parse(time.RFC3339Nano, m.timestamp)
	if err != nil || !gotTime.Equal(wantTime) {
		t.Errorf("message %d: rsyslog's timestamp %q, want %s", j, got.Timestamp, m.timestamp)
	}
	if got.Timestamp = ""; got != want {
		t.Errorf("message %d: rsyslog parsed\n%+v\nwant\n%+v", j, got, want)
	}
}

// rsyslogd finds the binary, also in /usr/sbin, which a user's PATH may
// lack.
func rsyslogd(t *testing.T) string {
	t.Helper()
	return peertest.Binary(t, "rsyslogd", "deploy/local/peers.sh install", "/usr/sbin/rsyslogd")
}

// startRsyslog checks the configuration with -N1, runs rsyslogd in the
// foreground until the test ends, and waits until every port accepts.
func startRsyslog(t *testing.T, bin, dir, conf string, ports ...int) {
	t.Helper()
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", confFile).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s\n%s", err, out, conf)
	}
	logFile := filepath.Join(dir, "rsyslogd.log")
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("rsyslogd output:\n%s", b)
		}
	})
	for _, port := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for deadline := time.Now().Add(10 * time.Second); ; {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("rsyslogd exited before listening on %s", addr)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd not listening on %s after 10s: %v", addr, err)
			}
		}
	}
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitLines waits up to 10s for a file to hold n lines and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		lines = lines[:0]
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if len(lines) >= n {
			return lines
		}
	}
	t.Fatalf("%s: %d lines after 10s, want %d: %q", path, len(lines), n, lines)
	return nil
}
