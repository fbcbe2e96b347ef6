//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
)

// demoPorts are the ports examples/demo.sh uses at DEMO_PORT_OFFSET 0: Consul (HTTP, server,
// LAN and WAN serf), Jaeger (query API and UI, OTLP/gRPC), the six backends, and each node's
// proxy, metrics, admin and gossip.
var demoPorts = []int{
	18500, 18300, 18301, 18302,
	16686, 14317,
	9101, 9102, 9201, 9202, 9301, 9302,
	8000, 8001, 8002, 8080, 8081, 8082, 9000, 9001, 9002, 17946, 17947, 17948,
}

// demoPortOffset returns a DEMO_PORT_OFFSET at which every port of the demo is free on
// loopback, TCP and UDP, so that the test runs beside a `make demo` (offset 0) and beside
// another run of itself (a CI job and a developer's on one machine). Offsets are multiples of
// 100 from 1,000 to 13,900, which keeps the highest port below the ephemeral range (32768),
// where the other tests' port-0 listeners live.
func demoPortOffset(t *testing.T) string {
	t.Helper()
	for range 100 {
		off := 1000 + 100*rand.IntN(130)
		if demoPortsFree(off) {
			return strconv.Itoa(off)
		}
	}
	t.Fatal("no DEMO_PORT_OFFSET found at which every demo port is free")
	return ""
}

func demoPortsFree(off int) bool {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, p := range demoPorts {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p+off))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		held = append(held, ln)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		held = append(held, pc)
	}
	return true
}

// TestDemo runs `make demo` headless (examples/demo.sh with this build of VeloFlux), pastes
// every command it prints, in order, and checks the claim written after each (`#=> ...`):
// the three nodes clustered through Consul, the dashboard served, traces in Jaeger, each
// client served by its nearest region, a sticky session honoured by the other nodes, a drain
// seen everywhere, failover after the eu-central backends stop. Then `examples/demo.sh stop` (make demo-stop) must end every
// process the demo listed, and a second run must end the same way on SIGINT (Ctrl-C).
func TestDemo(t *testing.T) {
	geoDB(t)
	consultest.Binary(t)
	tool(t, "VELOFLUX_JAEGER_BIN", "jaeger")

	t.Run("claims, then make demo-stop", func(t *testing.T) {
		d := startDemo(t)
		claims := 0
		for i, c := range d.commands {
			if c.claim == "" {
				out := d.sh(t, c.line)
				t.Logf("%d. %s\n%s", i+1, c.line, out)
				continue
			}
			claims++
			var prev string
			if i > 0 {
				prev = d.commands[i-1].out
			}
			took := testutil.EventuallyWithNote(t, "the claim of "+c.line, func() (bool, string) {
				c.out = d.sh(t, c.line)
				return c.holds(prev)
			})
			d.commands[i] = c
			t.Logf("%d. %s\n   #=> %s (held after %v)\n%s", i+1, c.line, c.claim, took, c.out)
		}
		if claims < 12 || d.points != 6 {
			t.Fatalf("%d claims in %d numbered points: the demo's text no longer reads as this test expects:\n%s", claims, d.points, d.text)
		}
		stop := exec.Command("bash", "examples/demo.sh", "stop")
		stop.Dir, stop.Env = "..", d.env
		if out, err := stop.CombinedOutput(); err != nil {
			t.Fatalf("demo.sh stop: %v\n%s", err, out)
		}
		d.awaitEnd(t)
	})

	t.Run("Ctrl-C", func(t *testing.T) {
		d := startDemo(t)
		// The terminal sends SIGINT to the whole foreground process group.
		if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		d.awaitEnd(t)
	})
}

type demo struct {
	cmd      *exec.Cmd
	env      []string
	dir      string
	pids     []int
	text     string
	points   int
	commands []demoCommand
	exited   chan error
}

type demoCommand struct {
	line, claim, out string
}

var backendField = regexp.MustCompile(`"backend":"([^"]+)"`)

// holds says whether the command's output out shows its claim, and what it showed instead.
func (c demoCommand) holds(prev string) (bool, string) {
	switch {
	case c.claim == "same backend as above":
		want := backendField.FindStringSubmatch(prev)
		got := backendField.FindAllStringSubmatch(c.out, -1)
		if want == nil || len(got) == 0 {
			return false, fmt.Sprintf("no backend in %q or %q", prev, c.out)
		}
		for _, g := range got {
			if g[1] != want[1] {
				return false, fmt.Sprintf("%s answered, the session was on %s", g[1], want[1])
			}
		}
		return true, ""
	case strings.HasPrefix(c.claim, "only "):
		want := strings.TrimPrefix(c.claim, "only ")
		lines := strings.FieldsFunc(c.out, func(r rune) bool { return r == '\n' })
		if len(lines) == 0 {
			return false, "no answer"
		}
		for _, l := range lines {
			if !strings.Contains(l, want) {
				return false, "answer " + l
			}
		}
		return true, ""
	default:
		return strings.Contains(c.out, c.claim), c.out
	}
}

// sh runs one pasted command line as a user's shell would, from the repository root.
func (d *demo) sh(t *testing.T, line string) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("%s: %v", line, err)
	}
	return string(out)
}

// startDemo starts examples/demo.sh in a process group of its own and reads what it prints
// until the closing line, which it prints once everything answers.
func startDemo(t *testing.T) *demo {
	t.Helper()
	dir := t.TempDir()
	d := &demo{dir: dir, exited: make(chan error, 1)}
	d.env = append(os.Environ(), "VELOFLUX_BIN="+binary, "DEMO_DIR="+dir, "DEMO_PORT_OFFSET="+demoPortOffset(t))
	d.cmd = exec.Command("bash", "examples/demo.sh")
	d.cmd.Dir, d.cmd.Env = "..", d.env
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &testutil.LogBuffer{}
	d.cmd.Stderr = stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		// Whatever happened, nothing of the demo outlives the test.
		stop := exec.Command("bash", "examples/demo.sh", "stop")
		stop.Dir, stop.Env = "..", d.env
		_ = stop.Run()
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			for _, name := range []string{"veloflux-eu-central", "veloflux-us-east", "veloflux-ap-southeast", "consul"} {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				lines := strings.Split(string(b), "\n")
				t.Logf("%s.log, last lines:\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
	})

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var text strings.Builder
	point := regexp.MustCompile(`^[0-9]+\. `)
	command := regexp.MustCompile(`^  (curl |for |kill |VF_ADMIN_USER=)`)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout()*3)
	defer cancel()
	for {
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
		case <-ctx.Done():
			t.Fatalf("the demo did not finish starting:\n%s\nstderr:\n%s", text.String(), stderr.String())
		}
		if !ok {
			t.Fatalf("the demo exited while starting (%v):\n%s\nstderr:\n%s", <-d.exited, text.String(), stderr.String())
		}
		text.WriteString(line + "\n")
		if point.MatchString(line) {
			d.points++
		}
		if command.MatchString(line) {
			cmdLine, claim, _ := strings.Cut(strings.TrimSpace(line), "#=>")
			d.commands = append(d.commands, demoCommand{line: strings.TrimSpace(cmdLine), claim: strings.TrimSpace(claim)})
		}
		if strings.HasPrefix(line, "Ctrl-C here") {
			break
		}
	}
	d.text = text.String()
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		d.pids = append(d.pids, pid)
	}
	// Consul, Jaeger, six backends, three nodes.
	if len(d.pids) != 11 {
		t.Fatalf("the demo lists %d processes, want 11: %v", len(d.pids), d.pids)
	}
	return d
}

// awaitEnd waits for the demo script to exit and checks that every process it listed is gone.
func (d *demo) awaitEnd(t *testing.T) {
	t.Helper()
	testutil.Receive(t, d.exited, "the demo script to exit")
	for _, pid := range d.pids {
		testutil.Eventually(t, fmt.Sprintf("demo process %d to be gone", pid), func() bool {
			// Gone, or a zombie the script's exit left to init: no longer running.
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			return err != nil || strings.Contains(string(b), ") Z ")
		})
	}
	if _, err := os.Stat(filepath.Join(d.dir, "pids")); !os.IsNotExist(err) {
		t.Errorf("the demo left its PID list behind: %v", err)
	}
	// The nodes stopped at once, each leaving a cluster whose other members were leaving too:
	// a clean stop for every one of them.
	for _, region := range []string{"eu-central", "us-east", "ap-southeast"} {
		b, err := os.ReadFile(filepath.Join(d.dir, "veloflux-"+region+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("component failed")); i >= 0 {
			t.Errorf("node %s did not stop cleanly: %s", region, b[i:min(len(b), i+300)])
		}
	}
}
