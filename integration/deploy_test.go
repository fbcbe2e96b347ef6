//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// supervised is a node kept running by a restart loop, as systemd's Restart=always would:
// whenever its process exits, it starts again from its configuration file, and its PID is
// written to a file that a replace command can read.
type supervised struct {
	name, cfg, pidFile, metrics, admin string
	mu                                 sync.Mutex
	pid                                int
}

func (s *supervised) currentPID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (s *supervised) spec() string { return s.name + "=" + s.admin + "," + s.metrics }

func superviseNode(t *testing.T, dir, name string) *supervised {
	t.Helper()
	s := &supervised{
		name: name, cfg: filepath.Join(dir, name+".yaml"), pidFile: filepath.Join(dir, name+".pid"),
		metrics: testutil.FreeAddr(t), admin: testutil.FreeAddr(t),
	}
	writeFile(t, s.cfg, deployNodeConfig(t, s))
	writeFile(t, filepath.Join(dir, name+".next.yaml"), deployNodeConfig(t, s))
	stop := make(chan struct{})
	done := make(chan struct{})
	logs := &testutil.LogBuffer{}
	go func() {
		defer close(done)
		for {
			cmd := exec.Command(binary, "run", "-config", s.cfg)
			cmd.Env = append(os.Environ(), "VF_ADMIN_USER=ops", "VF_ADMIN_PASS=pw")
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			s.mu.Lock()
			s.pid = cmd.Process.Pid
			s.mu.Unlock()
			_ = os.WriteFile(s.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-stop:
				_ = cmd.Process.Kill()
				<-exited
				return
			}
			// A node that cannot start would spin: restart at most five times a second.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
	testutil.Eventually(t, name+" ready", func() bool { return readyz(s.metrics) == http.StatusOK })
	return s
}

func deployNodeConfig(t *testing.T, s *supervised) string {
	g := testconfig.Global{BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(s.metrics), AdminAddress: testconfig.Ptr(s.admin), DrainTimeout: testconfig.Duration(time.Second)}
	return testconfig.Config{Global: g}.YAML(t)
}

func readyz(metrics string) int {
	resp, err := http.Get("http://" + metrics + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDeployScript runs scripts/deploy.sh in command mode against three real nodes kept up
// by a restart loop, the replace command installing the node's next configuration and sending
// SIGTERM. A rollout replaces every node in turn, each one drained (its /readyz already 503)
// when it is replaced and ready before the next; a node whose next configuration cannot start
// stops the rollout with exit status 1 and leaves the nodes after it untouched.
func TestDeployScript(t *testing.T) {
	dir := t.TempDir()
	nodes := []*supervised{superviseNode(t, dir, "a"), superviseNode(t, dir, "b"), superviseNode(t, dir, "c")}
	var specs []string
	for _, n := range nodes {
		specs = append(specs, n.spec())
	}
	// What the node's /readyz said when it was replaced, then the replacement itself.
	replace := fmt.Sprintf(`curl -s -o /dev/null -w '%%{http_code}\n' http://$(sed -n 's/^  metrics_address: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' %[1]s/{node}.yaml)/readyz >> %[1]s/{node}.readyz-at-replace && cp %[1]s/{node}.next.yaml %[1]s/{node}.yaml && kill -TERM "$(cat %[1]s/{node}.pid)"`, dir)
	run := func() (string, error) {
		cmd := exec.Command("bash", "scripts/deploy.sh")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "DEPLOYMENT_MODE=command", "NODES="+strings.Join(specs, " "),
			"REPLACE_CMD="+replace, "VF_ADMIN_USER=ops", "VF_ADMIN_PASS=pw", "READY_WAIT=5")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	t.Run("rollout", func(t *testing.T) {
		before := []int{nodes[0].currentPID(), nodes[1].currentPID(), nodes[2].currentPID()}
		out, err := run()
		if err != nil {
			t.Fatalf("deploy.sh: %v\n%s", err, out)
		}
		for i, n := range nodes {
			if n.currentPID() == before[i] {
				t.Errorf("%s was not replaced (PID %d)", n.name, before[i])
			}
			if got := readyz(n.metrics); got != http.StatusOK {
				t.Errorf("%s answers %d on /readyz after the rollout", n.name, got)
			}
			b, _ := os.ReadFile(filepath.Join(dir, n.name+".readyz-at-replace"))
			if strings.TrimSpace(string(b)) != "503" {
				t.Errorf("%s answered %q on /readyz when replaced, want 503 (drained)", n.name, b)
			}
		}
		// One node at a time, in order, each ready before the next is drained.
		if ia, ib := strings.Index(out, "a: ready"), strings.Index(out, "b: draining"); ia < 0 || ib < 0 || ia > ib {
			t.Errorf("b was drained before a was ready:\n%s", out)
		}
	})

	t.Run("a node that does not become ready stops the rollout", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "b.next.yaml"), testconfig.Config{Global: testconfig.Global{BindAddress: "not an address"}}.YAML(t))
		a, c := nodes[0].currentPID(), nodes[2].currentPID()
		out, err := run()
		if err == nil {
			t.Fatalf("deploy.sh went on past a node that cannot start:\n%s", out)
		}
		if !strings.Contains(out, "b did not become ready") || strings.Contains(out, "c: draining") {
			t.Errorf("want the rollout stopped at b, before c:\n%s", out)
		}
		if nodes[0].currentPID() == a {
			t.Error("a, before b, was not replaced")
		}
		if nodes[2].currentPID() != c || readyz(nodes[2].metrics) != http.StatusOK {
			t.Errorf("c was touched: PID %d -> %d, /readyz %d", c, nodes[2].currentPID(), readyz(nodes[2].metrics))
		}
	})

	t.Run("a node not ready before its upgrade is refused", func(t *testing.T) {
		out, err := run() // b still cannot start
		if err == nil || !strings.Contains(out, "a: ready") || !strings.Contains(out, "b is not ready before its upgrade") {
			t.Errorf("deploy.sh: %v, want a refusal at b:\n%s", err, out)
		}
	})
}
