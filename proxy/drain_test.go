package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// TestServeDrainsOnCancel: when Serve's context ends, the listener closes at once, the
// request in flight still completes, and Serve returns nil.
func TestServeDrainsOnCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	b := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("slow", b.addr(), 1)))
	_, addr, stop := runServer(t, testServerConfig(), p)
	c := newClient(t)

	done := make(chan response, 1)
	go func() {
		r, err := trySend(c, http.MethodGet, "http://"+addr+"/", "", nil, "")
		if err != nil {
			r.body = err.Error()
		}
		done <- r
	}()
	testutil.Receive(t, started, "the request to reach the backend")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	testutil.Eventually(t, "the listener to refuse connections", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return false
		}
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return true
		case errors.Is(err, syscall.ECONNRESET):
			// The handshake raced the listener's close; the next dial tells.
			return false
		}
		t.Fatalf("dial during drain: %v, want connection refused", err)
		return false
	})
	select {
	case r := <-done:
		t.Fatalf("in-flight request ended before the listener closed: %d %q", r.status, r.body)
	default:
	}
	if !p.Draining() {
		t.Fatalf("proxy not draining while Serve stops")
	}

	r := <-done
	if r.status != http.StatusOK || r.body != "done" {
		t.Fatalf("in-flight request got %d %q, want 200 done", r.status, r.body)
	}
	if !r.close {
		t.Fatalf("response during drain did not ask the client to close its connection")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(testutil.Timeout()):
		t.Fatalf("Serve did not return after the drain")
	}
}

// TestDrainAnswersFreshConnection: on the fast path, a client that connected just before the
// drain and sends its request after it started gets a whole answer (503, draining,
// Connection: close) rather than a connection closed under it, and the drain then ends.
// (Go's net/http server, on the TLS listener and with the fast path off, closes such a
// connection without an answer once it has read the request.)
func TestDrainAnswersFreshConnection(t *testing.T) {
	b := newBackend(t, "app", nil)
	reg := prometheus.NewRegistry()
	p := newProxy(t, DefaultConfig(), Options{Registerer: reg}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
	scfg := testServerConfig()
	scfg.HTTP1FastPath = true
	_, addr, stop := runServer(t, scfg, p)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Until the proxy accepts it, the connection waits in the kernel's queue, which closing
	// the listener resets.
	testutil.Eventually(t, "the proxy accepts the connection", func() bool {
		v, _ := metricValue(t, reg, "veloflux_client_connections", map[string]string{"listener": "http"})
		return v == 1
	})
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	testutil.Eventually(t, "the drain starts", p.Draining)
	testutil.Eventually(t, "the listener refuses connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request sent after the drain started: %v, want an answer", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	checkErrorAnswer(t, response{status: resp.StatusCode, header: resp.Header, body: string(body), close: resp.Close}, http.StatusServiceUnavailable, "draining")
	if !resp.Close {
		t.Fatal("the answer during the drain did not close the connection")
	}
	if err := testutil.Receive(t, stopped, "the drain ends"); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestServerDrainAndUndrain(t *testing.T) {
	b := newBackend(t, "app", nil)
	reg := prometheus.NewRegistry()
	p := newProxy(t, DefaultConfig(), Options{Registerer: reg}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
	s, addr, _ := runServer(t, testServerConfig(), p)
	c := newClient(t)
	url := "http://" + addr + "/"

	steps := []struct {
		name         string
		action       func()
		wantDraining bool
		wantStatus   int
	}{
		{"serving", func() {}, false, http.StatusOK},
		{"drained", s.Drain, true, http.StatusServiceUnavailable},
		{"drained twice", s.Drain, true, http.StatusServiceUnavailable},
		{"undrained", s.Undrain, false, http.StatusOK},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.action()
			if d := p.Draining(); d != st.wantDraining {
				t.Fatalf("Draining() = %v, want %v", d, st.wantDraining)
			}
			wantGauge := 0.0
			if st.wantDraining {
				wantGauge = 1
			}
			if v, _ := metricValue(t, reg, "veloflux_draining", nil); v != wantGauge {
				t.Fatalf("veloflux_draining = %v, want %v", v, wantGauge)
			}
			hits := b.hits()
			r := send(t, c, http.MethodGet, url, "", nil, "")
			if st.wantStatus == http.StatusOK {
				if r.status != http.StatusOK || b.hits() != hits+1 {
					t.Fatalf("got %d, backend hits %d -> %d; want 200 from the backend", r.status, hits, b.hits())
				}
				return
			}
			checkErrorAnswer(t, r, http.StatusServiceUnavailable, "draining")
			if !r.close {
				t.Fatalf("503 while draining did not carry Connection: close")
			}
			if b.hits() != hits {
				t.Fatalf("a drained node forwarded a request")
			}
		})
	}
}
