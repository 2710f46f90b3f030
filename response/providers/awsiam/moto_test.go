package awsiam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

// moto is the moto_server that TestMain starts for the package's state
// tests: moto 5.x comes with the machine image's Python (no registry here
// serves it), found as NHI_MOTO_SERVER or moto_server on PATH.
var moto struct {
	url string
	err error // why there is none
}

func TestMain(m *testing.M) {
	stop := isolateAWSEnv()
	stopMoto := startMoto()
	code := m.Run()
	stopMoto()
	stop()
	os.Exit(code)
}

// isolateAWSEnv keeps the developer's AWS profile, shared files and
// endpoint overrides out of the SDK's default configuration.
func isolateAWSEnv() (restore func()) {
	dir, err := os.MkdirTemp("", "awsiam-test-")
	if err != nil {
		panic(err)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return func() { os.RemoveAll(dir) }
}

func startMoto() (stop func()) {
	noop := func() {}
	bin := cmp.Or(os.Getenv("NHI_MOTO_SERVER"), "moto_server")
	path, err := exec.LookPath(bin)
	if err != nil {
		moto.err = fmt.Errorf("%s not found (it comes with the machine image's Python; set NHI_MOTO_SERVER to its path): %w", bin, err)
		return noop
	}
	port, err := freePort()
	if err != nil {
		moto.err = err
		return noop
	}
	// A file, not a pipe: moto_server forks a child that owns the port, and
	// a pipe would keep Wait waiting for it.
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		moto.err = err
		return noop
	}
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so one signal reaches the child too, and the
	// kernel kills it if the test binary dies.
	cmd.SysProcAttr = peer.SysProcAttr()
	if err := cmd.Start(); err != nil {
		moto.err = fmt.Errorf("start %s: %w", path, err)
		return noop
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// The child may outlive the parent for a moment: wait until the port
		// is free, so the next run does not find the old server answering.
		if !waitPortFree(port, 10*time.Second) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			waitPortFree(port, 5*time.Second)
		}
		logFile.Close()
		os.Remove(logFile.Name())
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			out, _ := os.ReadFile(logFile.Name())
			moto.err = fmt.Errorf("moto_server exited (%v): %s", waitErr, out)
			stop()
			return noop
		default:
		}
		if resp, err := http.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				moto.url = url
				return stop
			}
		}
	}
	moto.err = errors.New("moto_server did not answer within 60s")
	stop()
	return noop
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitPortFree(port int, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return true
		}
		c.Close()
	}
	return false
}

// needMoto returns moto's URL with its state reset, or skips the test when
// moto_server is missing — fails it under CI, whose machine image has it.
func needMoto(t *testing.T) string {
	t.Helper()
	if moto.err != nil {
		peertest.Unavailable(t, "moto_server", moto.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, moto.url+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("moto reset: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto reset: HTTP %d", resp.StatusCode)
	}
	return moto.url
}
