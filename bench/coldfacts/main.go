// Command coldfacts measures what a VeloFlux binary does outside the steady request path:
//
//	coldfacts ready  -bin ./veloflux -routes 100 -n 10
//	coldfacts reload -bin ./veloflux -backends 10000 -rate 2000 -duration 10s -every 2s
//
// ready starts the binary n times with a configuration of that many routes (one pool and one
// backend each) and times each start, from fork to the ready file `run -ready-file` writes
// once every listener is bound and every part runs.
//
// reload runs the binary with a table of that many backends (one pool of two real backends
// that the load goes to, the rest in pools of 100 behind routes by host), sends GETs at a fixed
// rate for duration without reloads, then for duration again while it rewrites the
// configuration (one backend moved, or with -all every backend new) and sends SIGHUP every
// interval. Latency counts from when each request was due, so a stall shows up in the requests
// queued behind it. It prints each phase's p50, p99 and max, each reload's time (SIGHUP to its
// "configuration reloaded" log line), and the slowest request that overlapped a reload against
// the run's p99 (both phases) and the reload phase's, with how many overlapping requests, and
// how many reloads, had one above the run's p99. bench/cold.sh runs both.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	bin := fs.String("bin", "./veloflux", "the binary to measure")
	cpu := fs.String("taskset", "", "run the binary on these CPUs (taskset -c LIST)")
	var err error
	switch os.Args[1] {
	case "ready":
		routes := fs.Int("routes", 100, "routes, each with its own pool and backend")
		n := fs.Int("n", 10, "starts")
		_ = fs.Parse(os.Args[2:])
		err = ready(*bin, *cpu, *routes, *n)
	case "reload":
		backends := fs.Int("backends", 10000, "backends in the table")
		rate := fs.Int("rate", 2000, "requests per second")
		conns := fs.Int("c", 16, "client connections")
		duration := fs.Duration("duration", 10*time.Second, "length of each phase")
		every := fs.Duration("every", 2*time.Second, "time between reloads")
		all := fs.Bool("all", false, "every reload replaces every backend, not one")
		_ = fs.Parse(os.Args[2:])
		err = reload(*bin, *cpu, *backends, *rate, *conns, *duration, *every, *all)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldfacts:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: coldfacts ready|reload [flags]")
	os.Exit(2)
}

// node is a running VeloFlux process.
type node struct {
	cmd   *exec.Cmd
	ready string
	lines chan logLine // its log lines, as they arrive
}

type logLine struct {
	at  time.Time
	msg string
}

func command(bin, cpu string, args ...string) *exec.Cmd {
	if cpu != "" {
		return exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// start runs bin with config and returns once it is ready, with the time that took.
func start(bin, cpu, dir, config string) (*node, time.Duration, error) {
	n := &node{ready: filepath.Join(dir, "ready.json"), lines: make(chan logLine, 1024)}
	_ = os.Remove(n.ready)
	n.cmd = command(bin, cpu, "run", "-config", config, "-ready-file", n.ready)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	if err := n.cmd.Start(); err != nil {
		return nil, 0, err
	}
	go n.read(stderr)
	for {
		if _, err := os.Stat(n.ready); err == nil {
			return n, time.Since(t0), nil
		}
		if time.Since(t0) > time.Minute {
			n.stop()
			return nil, 0, errors.New("not ready after a minute")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (n *node) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			select {
			case n.lines <- logLine{time.Now(), rec.Msg}:
			default:
			}
		}
	}
}

func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
}

// backend serves size-byte answers on 127.0.0.1 until the process ends.
func backend(size int) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	body := []byte(strings.Repeat("x", size-1) + "\n")
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	}()
	return ln.Addr().String(), nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

const header = "global:\n  bind_address: %q\n  metrics_address: \"\"\n  admin_address: \"\"\n  access_log: false\n  log_level: info\n"

func ready(bin, cpu string, routes, n int) error {
	dir, err := os.MkdirTemp("", "coldfacts")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	be, err := backend(100)
	if err != nil {
		return err
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, header, addr)
	b.WriteString("pools:\n")
	for i := range routes {
		fmt.Fprintf(&b, "  - name: p%d\n    backends:\n      - address: %q\n", i, be)
	}
	b.WriteString("routes:\n")
	for i := range routes {
		fmt.Fprintf(&b, "  - host: \"r%d.example\"\n    pool: p%d\n", i, i)
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(b.String()), 0o600); err != nil {
		return err
	}
	var took []time.Duration
	for range n {
		nd, d, err := start(bin, cpu, dir, config)
		if err != nil {
			return err
		}
		nd.stop()
		took = append(took, d)
	}
	slices.Sort(took)
	fmt.Printf("start to ready, %d routes, %d starts: median %.1f ms, min %.1f ms, max %.1f ms\n",
		routes, n, ms(took[len(took)/2]), ms(took[0]), ms(took[len(took)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// tableConfig is a configuration with the real backends in pool "bench" (the default route)
// and the rest of the backends in pools of 100 behind routes by host; shift moves the port of
// the first moved ones.
func tableConfig(addr string, real []string, backends, moved, shift int) string {
	var b strings.Builder
	fmt.Fprintf(&b, header, addr)
	b.WriteString("pools:\n  - name: bench\n    backends:\n")
	for _, r := range real {
		fmt.Fprintf(&b, "      - address: %q\n", r)
	}
	rest := backends - len(real)
	pools := (rest + 99) / 100
	for p := range pools {
		fmt.Fprintf(&b, "  - name: p%d\n    backends:\n", p)
		for i := p * 100; i < min(rest, (p+1)*100); i++ {
			port := 8000 + i%250
			if i < moved {
				port += 1000 * shift
			}
			fmt.Fprintf(&b, "      - address: \"10.%d.%d.1:%d\"\n", i/250/250%250, i/250%250, port)
		}
	}
	b.WriteString("routes:\n")
	for p := range pools {
		fmt.Fprintf(&b, "  - host: \"p%d.example\"\n    pool: p%d\n", p, p)
	}
	b.WriteString("  - pool: bench\n")
	return b.String()
}

type sample struct {
	due, end time.Time
}

func (s sample) latency() time.Duration { return s.end.Sub(s.due) }

func reload(bin, cpu string, backends, rate, conns int, duration, every time.Duration, all bool) error {
	dir, err := os.MkdirTemp("", "coldfacts")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var real []string
	for range 2 {
		be, err := backend(100)
		if err != nil {
			return err
		}
		real = append(real, be)
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	moved := 1
	if all {
		moved = backends
	}
	files := [2]string{tableConfig(addr, real, backends, moved, 0), tableConfig(addr, real, backends, moved, 1)}
	config := filepath.Join(dir, "config.yaml")
	write := func(i int) error {
		tmp := config + ".tmp"
		if err := os.WriteFile(tmp, []byte(files[i%2]), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, config)
	}
	if err := write(0); err != nil {
		return err
	}
	nd, _, err := start(bin, cpu, dir, config)
	if err != nil {
		return err
	}
	defer nd.stop()

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}}
	url := "http://" + addr + "/plain"
	// Warm-up: connections open, the proxy's pools fill.
	if _, err := run(client, url, rate, conns, time.Second); err != nil {
		return err
	}

	base, err := run(client, url, rate, conns, duration)
	if err != nil {
		return err
	}
	// The reload phase: the load runs while another goroutine reloads.
	type window struct{ from, to time.Time }
	var windows []window
	var reloadErr error
	stopReloads := make(chan struct{})
	reloadsDone := make(chan struct{})
	go func() {
		defer close(reloadsDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stopReloads:
				return
			case <-tick.C:
			}
			if err := write(i); err != nil {
				reloadErr = err
				return
			}
			// Drain log lines that came before this reload (a file watch may also reload).
		drain:
			for {
				select {
				case <-nd.lines:
				default:
					break drain
				}
			}
			from := time.Now()
			_ = nd.cmd.Process.Signal(syscall.SIGHUP)
			for l := range nd.lines {
				if l.msg == "configuration reloaded" {
					windows = append(windows, window{from, l.at})
					break
				}
				if l.msg == "configuration rejected; the previous one keeps serving" {
					reloadErr = errors.New("a reload was rejected")
					return
				}
			}
		}
	}()
	loaded, err := run(client, url, rate, conns, duration)
	close(stopReloads)
	<-reloadsDone
	if err != nil {
		return err
	}
	if reloadErr != nil {
		return reloadErr
	}

	what := "one backend moved"
	if all {
		what = "every backend new"
	}
	fmt.Printf("%d backends, %d requests/s over %d connections, %s per phase\n", backends, rate, conns, duration)
	report("without reloads", base)
	report(fmt.Sprintf("with a reload every %s (%s)", every, what), loaded)
	var took []time.Duration
	for _, w := range windows {
		took = append(took, w.to.Sub(w.from))
	}
	slices.Sort(took)
	if len(took) == 0 {
		return errors.New("no reload completed")
	}
	fmt.Printf("reloads: %d, SIGHUP to \"configuration reloaded\": median %.1f ms, max %.1f ms\n",
		len(took), ms(took[len(took)/2]), ms(took[len(took)-1]))
	// The run's p99 is over both phases, every request of the run; a request that overlapped
	// a reload (due before its end, answered after its start) and took longer is a spike the
	// reload may have caused.
	runP99 := percentile(slices.Concat(base, loaded), 0.99)
	p99 := percentile(loaded, 0.99)
	var worst time.Duration
	overlapping, above, spiked := 0, 0, 0
	worstPer := make([]time.Duration, len(windows))
	for _, s := range loaded {
		hit := false
		for i, w := range windows {
			if s.due.Before(w.to) && s.end.After(w.from) {
				hit = true
				worstPer[i] = max(worstPer[i], s.latency())
			}
		}
		if hit {
			overlapping++
			worst = max(worst, s.latency())
			if s.latency() > runP99 {
				above++
			}
		}
	}
	for _, w := range worstPer {
		if w > runP99 {
			spiked++
		}
	}
	verdict := func(d, p time.Duration) string {
		if d > p {
			return "ABOVE"
		}
		return "below"
	}
	fmt.Printf("run (both phases): %d requests, p99 %.2f ms\n", len(base)+len(loaded), ms(runP99))
	fmt.Printf("requests overlapping a reload: %d, slowest %.2f ms, %s the run's p99 %.2f ms, %s the reload phase's p99 %.2f ms\n",
		overlapping, ms(worst), verdict(worst, runP99), ms(runP99), verdict(worst, p99), ms(p99))
	fmt.Printf("requests overlapping a reload above the run's p99: %d of %d; reloads with one: %d of %d\n",
		above, overlapping, spiked, len(windows))
	return nil
}

func report(name string, s []sample) {
	fmt.Printf("%-44s %7d requests  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms\n", name, len(s),
		ms(percentile(s, 0.5)), ms(percentile(s, 0.99)), ms(percentile(s, 1)))
}

func percentile(s []sample, q float64) time.Duration {
	l := make([]time.Duration, len(s))
	for i, x := range s {
		l[i] = x.latency()
	}
	slices.Sort(l)
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))]
}

// run sends GETs at rate per second over conns connections for d, each timed from when it
// was due, and fails on any error or non-200 answer.
func run(client *http.Client, url string, rate, conns int, d time.Duration) ([]sample, error) {
	total := int(d.Seconds() * float64(rate))
	due := make(chan time.Time, total)
	out := make([][]sample, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for t := range due {
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs <- err
					for range due {
					}
					return
				}
				out[w] = append(out[w], sample{t, time.Now()})
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range total {
		t := start.Add(time.Duration(i) * interval)
		if wait := time.Until(t); wait > 0 {
			time.Sleep(wait)
		}
		due <- t
	}
	close(due)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	var all []sample
	for _, o := range out {
		all = append(all, o...)
	}
	return all, nil
}
