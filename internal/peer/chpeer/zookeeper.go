//go:build unix

package chpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

// zookeeperJar is Debian's zookeeper package; its manifest names the jars
// it needs, so it runs with java -cp alone.
const zookeeperJar = "/usr/share/java/zookeeper.jar"

// StartZooKeeper runs a standalone ZooKeeper (Debian's zookeeper package)
// on a free loopback port for Replicated tables and ON CLUSTER DDL, and
// returns its address; the test's cleanup stops it. It is ready in about
// a second.
func StartZooKeeper(t testing.TB) string {
	t.Helper()
	java := peertest.Binary(t, "java", "apt-get install zookeeper")
	if _, err := os.Stat(zookeeperJar); err != nil {
		peertest.Unavailable(t, "ZooKeeper (apt-get install zookeeper)", err)
	}
	ports, err := peer.FreePorts(1)
	if err != nil {
		t.Fatalf("zookeeper port: %v", err)
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	conf := fmt.Sprintf(`tickTime=500
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr
`, filepath.Join(dir, "data"), ports[0])
	confPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// slf4j-simple (Debian's libslf4j-java, a zookeeper dependency) makes
	// ZooKeeper log to zookeeper.log instead of nowhere.
	cmd := exec.Command(java, "-Xmx128m", "-cp", zookeeperJar+":/usr/share/java/slf4j-simple.jar",
		"org.apache.zookeeper.server.ZooKeeperServerMain", confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = peer.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		peer.StopGroup(cmd.Process.Pid, 10*time.Second)
		<-exited
	})
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			log, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			t.Fatalf("zookeeper exited during start (%v): %s", err, log)
		default:
		}
		if serving(addr) {
			return addr
		}
	}
	t.Fatalf("zookeeper not ready on %s in %s", addr, startTimeout)
	return ""
}

// serving asks ZooKeeper whether it serves. srvr, not ruok: ruok answers
// imok while the server still refuses sessions ("ZooKeeperServer not
// running"), and ClickHouse 18.16 crashes on DDL when its first session
// attempts failed.
func serving(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.HasPrefix(line, "Zookeeper version:")
}
