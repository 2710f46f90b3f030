package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"
)

// buildBinary builds nhisentry into the test's folder; after the first
// build of a run only the link step is repeated (the build cache).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nhisentry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// writeConfig writes cfg as the YAML file `nhisentry run --config` reads.
func writeConfig(t *testing.T, cfg Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nhisentry.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ended is how a process or a run ended, once it has, for any number of
// readers.
type ended struct {
	c   chan struct{} // closed at the end
	err error
}

func newEnded() *ended { return &ended{c: make(chan struct{})} }

// finish records the end; call it once.
func (e *ended) finish(err error) {
	e.err = err
	close(e.c)
}

// wait blocks until the end and returns its error.
func (e *ended) wait() error {
	<-e.c
	return e.err
}

// peek reports whether it has ended, and how, without waiting.
func (e *ended) peek() (error, bool) {
	select {
	case <-e.c:
		return e.err, true
	default:
		return nil, false
	}
}

// child is `nhisentry run` as a subprocess.
type child struct {
	cmd  *exec.Cmd
	HTTP string // the metrics address it logged
	done *ended
	mu   sync.Mutex
	log  []string // the last lines of its log, for failure messages
}

const childLogLines = 200

// startChild runs bin with the configuration file and returns once it logs
// that it is running (its HTTP address must be "127.0.0.1:0" or free). The
// test's cleanup kills it if it is still there.
func startChild(t *testing.T, bin, cfgPath string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, "run", "--config", cfgPath), done: newEnded()}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.kill() })
	running := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			if c.log = append(c.log, line); len(c.log) > childLogLines {
				c.log = c.log[len(c.log)-childLogLines:]
			}
			c.mu.Unlock()
			if strings.Contains(line, "nhisentry running") {
				_, rest, _ := strings.Cut(line, "http=")
				addr, _, _ := strings.Cut(rest, " ")
				running <- addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		c.done.finish(c.cmd.Wait())
	}()
	select {
	case c.HTTP = <-running:
	case <-c.done.c:
		t.Fatalf("nhisentry exited before it was running: %v\n%s", c.done.wait(), c.logTail())
	case <-time.After(2 * time.Minute):
		t.Fatalf("nhisentry did not start\n%s", c.logTail())
	}
	return c
}

func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	c.done.wait()
}

// stop sends SIGTERM and expects a clean exit within 45 s.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done.c:
		if err := c.done.wait(); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logTail())
		}
	case <-time.After(45 * time.Second):
		c.kill()
		t.Fatalf("nhisentry did not stop within 45 s of SIGTERM\n%s", c.logTail())
	}
}

// metrics reads /metrics and sums each metric's samples over its labels.
func (c *child) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.HTTP + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			continue
		}
		name, _, _ := strings.Cut(line[:i], "{")
		sums[name] += v
	}
	return sums
}

// committedRecords is how many records of the input topics group has
// committed, summed over partitions.
func committedRecords(t *testing.T, brokers []string, group string) int64 {
	t.Helper()
	adm, ctx := admin(t, brokers)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0 // no group yet
	}
	var n int64
	committed.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			n += o.At
		}
	})
	return n
}

// inputRecords counts the records on the input topics.
func inputRecords(t *testing.T, brokers []string) uint64 {
	t.Helper()
	var n uint64
	for _, topic := range demoTopics {
		readAll(t, brokers, topic, func(*kgo.Record) { n++ })
	}
	return n
}
