// Package controlplane runs a real Kubernetes control plane on this
// machine: etcd and kube-apiserver on free loopback ports, with static token
// users and RBAC. There is no controller-manager, scheduler or kubelet: pods
// stay Pending, token Secrets are not filled, NetworkPolicies are stored but
// not enforced. The tests of the Kubernetes and Istio providers use it
// (through kubetest), and so does the demo. Binaries:
//
//	NHI_KUBE_APISERVER  kube-apiserver (default: the one deploy/local/kube-apiserver.sh
//	                    builds, ${XDG_CACHE_HOME:-$HOME/.cache}/nhisentry/peers/kube-apiserver-v1.37.2/kube-apiserver)
//	NHI_ETCD            etcd (default: etcd on PATH, else /usr/bin/etcd)
package controlplane

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nhisentry/nhisentry/internal/peer"
)

// APIServerVersion is the kube-apiserver version deploy/local/kube-apiserver.sh builds.
const APIServerVersion = "v1.37.2"

// UnprivilegedUser is the name of the user with no RBAC bindings.
const UnprivilegedUser = "nhi-nobody"

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Cluster is a running control plane.
type Cluster struct {
	// Admin authenticates as a member of system:masters.
	Admin *rest.Config
	// Unprivileged authenticates as UnprivilegedUser, who may do nothing
	// beyond discovery.
	Unprivileged *rest.Config

	dir   string
	procs []*exec.Cmd
}

// APIServerPath is where the kube-apiserver binary is looked for.
func APIServerPath() string {
	if p := os.Getenv("NHI_KUBE_APISERVER"); p != "" {
		return p
	}
	dir := peer.CacheDir("kube-apiserver-" + APIServerVersion)
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "kube-apiserver")
}

// EtcdPath is where the etcd binary is looked for.
func EtcdPath() string {
	if p := os.Getenv("NHI_ETCD"); p != "" {
		return p
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return "/usr/bin/etcd"
}

func executable(path string) error {
	if path == "" {
		return errors.New("no path")
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// Binaries returns the paths of the servers, or why one is missing.
func Binaries() (apiserver, etcd string, err error) {
	apiserver, etcd = APIServerPath(), EtcdPath()
	if err := executable(apiserver); err != nil {
		return "", "", fmt.Errorf("kube-apiserver (NHI_KUBE_APISERVER): %w", err)
	}
	if err := executable(etcd); err != nil {
		return "", "", fmt.Errorf("etcd (NHI_ETCD): %w", err)
	}
	return apiserver, etcd, nil
}

// Start starts a control plane; Stop stops it and removes its files.
func Start() (*Cluster, error) {
	apiserver, etcd, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nhisentry-controlplane-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.run(apiserver, etcd); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) run(apiserver, etcd string) error {
	ports, err := peer.FreePorts(3)
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.spawn("etcd", etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync",
	); err != nil {
		return err
	}

	admin, nobody := randomToken(), randomToken()
	tokens := filepath.Join(c.dir, "tokens.csv")
	content := fmt.Sprintf("%s,admin,uid-admin,\"system:masters\"\n%s,%s,uid-nobody\n", admin, nobody, UnprivilegedUser)
	if err := os.WriteFile(tokens, []byte(content), 0o600); err != nil {
		return err
	}
	saKey := filepath.Join(c.dir, "sa.key")
	if err := writeSigningKey(saKey); err != nil {
		return err
	}
	certDir := filepath.Join(c.dir, "certs")
	host := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.spawn("kube-apiserver", apiserver,
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		// A loopback advertise address is refused by the endpoint reconciler.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+certDir,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer="+host,
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		// No controller-manager fills in default service accounts.
		"--disable-admission-plugins=ServiceAccount",
	); err != nil {
		return err
	}
	// The serving certificate and its CA are generated into certDir on start.
	tls := rest.TLSClientConfig{CAFile: filepath.Join(certDir, "apiserver.crt")}
	c.Admin = &rest.Config{Host: host, BearerToken: admin, TLSClientConfig: tls}
	c.Unprivileged = &rest.Config{Host: host, BearerToken: nobody, TLSClientConfig: tls}
	return c.waitReady()
}

func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if err := c.exited(); err != nil {
			return err
		}
		if last = c.ready(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready in %s: %v; %s", readyTimeout, last, c.logTails())
}

func (c *Cluster) ready() error {
	// The CA file appears only once the apiserver has made its certificate.
	if _, err := os.Stat(c.Admin.TLSClientConfig.CAFile); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(c.Admin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Admin.Host+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// spawn starts a server in its own process group, so stop can end it with
// anything it forks, logging to <dir>/<name>.log.
func (c *Cluster) spawn(name, path string, args ...string) error {
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = peer.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	go func() { _ = cmd.Wait() }()
	return nil
}

// exited reports a server that stopped on its own.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		if err := p.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("%s exited early; %s", filepath.Base(p.Path), c.logTails())
		}
	}
	return nil
}

func (c *Cluster) logTails() string {
	var b bytes.Buffer
	for _, name := range []string{"etcd", "kube-apiserver"} {
		data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s log tail ---\n%s", name, data)
	}
	return b.String()
}

// stop ends the servers, the apiserver first, and removes their files.
// Stop kills both servers and removes their files.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		peer.StopGroup(c.procs[i].Process.Pid, stopTimeout)
	}
	c.procs = nil
	_ = os.RemoveAll(c.dir)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeSigningKey writes a new P-256 key for service-account tokens; the
// apiserver reads both the private and the public half from it.
func writeSigningKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// Kubeconfig writes a kubeconfig file for the admin user to path, so a
// client configures itself the way it would for a real cluster.
func (c *Cluster) Kubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["nhisentry"] = &clientcmdapi.Cluster{Server: c.Admin.Host,
		CertificateAuthority: c.Admin.TLSClientConfig.CAFile, CertificateAuthorityData: c.Admin.TLSClientConfig.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.Admin.BearerToken}
	cfg.Contexts["nhisentry"] = &clientcmdapi.Context{Cluster: "nhisentry", AuthInfo: "admin"}
	cfg.CurrentContext = "nhisentry"
	return clientcmd.WriteToFile(*cfg, path)
}
