//go:build integration

package integration

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// netnsChildEnv marks a test binary re-run inside its own network namespace.
const netnsChildEnv = "VELOFLUX_IT_NETNS"

// inOwnNetns re-runs the calling test inside a fresh network namespace (unshare --net) and
// reports whether the caller is that re-run, which then does the work. In the parent it
// waits for the child, logs its output and fails with it. Everything the child changes
// (addresses, routes, namespaces it creates) lives in namespaces that die with it, so the
// host's network is never touched. Needs root; in CI a missing capability is a failure.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsChildEnv) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespace tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
		}
		t.Skip("network namespace tests need root")
	}
	cmd := exec.Command("unshare", "--net", "--", os.Args[0],
		"-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1", binaryEnv+"="+binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in its own network namespace failed: %v", err)
	}
	return false
}

// netLab is a small network inside the test's namespace: a bridge at hubIP (where the
// test, its backends and its clients live) and one namespace per node, each with one
// address on the bridge. Routes in a node's namespace decide whom it can reach.
type netLab struct {
	t         *testing.T
	hubIP     string
	backendIP string   // second hub address, where backends listen
	ns        []string // namespace of node i
	ips       []string // address of node i
}

func newNetLab(t *testing.T, nodes int) *netLab {
	t.Helper()
	l := &netLab{t: t, hubIP: "10.77.0.1", backendIP: "10.77.0.2"}
	l.ip("link", "set", "lo", "up")
	l.ip("link", "add", "vfxbr0", "type", "bridge")
	l.ip("addr", "add", l.hubIP+"/24", "dev", "vfxbr0")
	l.ip("addr", "add", l.backendIP+"/24", "dev", "vfxbr0")
	l.ip("link", "set", "vfxbr0", "up")
	for i := range nodes {
		ns := fmt.Sprintf("vfx%d-n%d", os.Getpid(), i)
		ip := fmt.Sprintf("10.77.0.%d", 11+i)
		veth := fmt.Sprintf("vfxv%d", i)
		l.ip("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		l.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("link", "set", veth, "master", "vfxbr0", "up")
		l.ip("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ns, l.ips = append(l.ns, ns), append(l.ips, ip)
	}
	return l
}

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// exec is the command prefix that runs a program in node i's namespace.
func (l *netLab) exec(i int) []string { return []string{"ip", "netns", "exec", l.ns[i]} }

// cut drops every packet between node i and node j, both ways (blackhole routes), while both
// still reach the hub. heal undoes it.
func (l *netLab) cut(i, j int) {
	l.ip("-n", l.ns[i], "route", "add", "blackhole", l.ips[j]+"/32")
	l.ip("-n", l.ns[j], "route", "add", "blackhole", l.ips[i]+"/32")
}

func (l *netLab) heal(i, j int) {
	l.ip("-n", l.ns[i], "route", "del", "blackhole", l.ips[j]+"/32")
	l.ip("-n", l.ns[j], "route", "del", "blackhole", l.ips[i]+"/32")
}

// addHubIP gives the hub one more address, for a backend that one node alone must be unable to
// reach (blockIP).
func (l *netLab) addHubIP(ip string) {
	l.ip("addr", "add", ip+"/24", "dev", "vfxbr0")
}

// blockIP makes node i unable to reach ip, while everything else still reaches it.
func (l *netLab) blockIP(i int, ip string) {
	l.ip("-n", l.ns[i], "route", "add", "blackhole", ip+"/32")
}

// backend starts a backend answering with its name on the lab's backend address.
func (l *netLab) backend(name string) *backend {
	l.t.Helper()
	ln, err := net.Listen("tcp", l.backendIP+":0")
	if err != nil {
		l.t.Fatal(err)
	}
	b := &backend{name: name}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
	b.Listener.Close()
	b.Listener = ln
	b.Start()
	l.t.Cleanup(b.Close)
	return b
}
