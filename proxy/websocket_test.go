package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/veloflux/veloflux/internal/testutil"
)

// wsEchoBackend greets each WebSocket client, then answers every message with "echo: " and
// the message, until the connection ends.
func wsEchoBackend(t *testing.T) *testBackend {
	return newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background() // the connection, not the request, bounds this loop
		if err := c.Write(ctx, websocket.MessageText, []byte("welcome")); err != nil {
			return
		}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
}

// wsClient returns an HTTP client for WebSocket dials: no overall timeout, since the
// response body is the connection, and its idle connections closed when the test ends.
func wsClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func wsDial(t *testing.T, addr string) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: wsClient(t)})
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, resp
}

func wsExpect(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(msg) != want {
		t.Fatalf("read %q, want %q", msg, want)
	}
}

func wsEcho(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	wsExpect(t, c, "echo: "+msg)
}

// wsServerConfig has a read timeout far shorter than the life of the sockets under test.
func wsServerConfig() ServerConfig {
	cfg := testServerConfig()
	cfg.ReadTimeout = 200 * time.Millisecond
	cfg.DrainTimeout = 300 * time.Millisecond
	return cfg
}

func TestWebSocketThroughProxy(t *testing.T) {
	b := wsEchoBackend(t)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("ws", b.addr(), 1)))
	_, addr, _ := runServer(t, wsServerConfig(), p)

	c, resp := wsDial(t, addr)
	if id := resp.Header.Get("X-Request-Id"); !requestIDPattern.MatchString(id) {
		t.Fatalf("101 response X-Request-Id = %q", id)
	}
	wsExpect(t, c, "welcome") // backend to client
	wsEcho(t, c, "hello")     // client to backend and back
	if a, n := activeOf(t, p, "web", "ws"), p.InFlight(); a != 1 || n != 1 {
		t.Fatalf("open socket counted active %d, in flight %d; want 1 and 1", a, n)
	}

	// Idle for three read timeouts: an upgraded connection must not inherit the deadline
	// of the request that opened it.
	time.Sleep(600 * time.Millisecond)
	wsEcho(t, c, "still there")

	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	testutil.Eventually(t, "the backend's active count to return to 0", func() bool { return activeOf(t, p, "web", "ws") == 0 })
	testutil.Eventually(t, "in-flight requests to return to 0", func() bool { return p.InFlight() == 0 })
}

func TestWebSocketClosedByDrain(t *testing.T) {
	b := wsEchoBackend(t)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("ws", b.addr(), 1)))
	s, addr, _ := runServer(t, wsServerConfig(), p)

	c, _ := wsDial(t, addr)
	wsExpect(t, c, "welcome")
	start := time.Now()
	s.Drain()
	// The drain gives sockets DrainTimeout to finish: this one still works at first.
	wsEcho(t, c, "during drain")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, msg, err := c.Read(ctx); err == nil {
		t.Fatalf("read %q from a socket the drain should have closed", msg)
	}
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("the proxy did not close the socket within 2s of the drain")
	}
	if elapsed < 250*time.Millisecond {
		t.Fatalf("socket closed %v after the drain began, before the 300ms DrainTimeout", elapsed)
	}
	testutil.Eventually(t, "the backend's active count to return to 0", func() bool { return activeOf(t, p, "web", "ws") == 0 })
	testutil.Eventually(t, "in-flight requests to return to 0", func() bool { return p.InFlight() == 0 })

	// A drained node takes no new sockets either.
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	if c2, resp, err := websocket.Dial(dctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: wsClient(t)}); err == nil {
		_ = c2.CloseNow()
		t.Fatalf("a draining node accepted a new WebSocket")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new WebSocket during drain: %v, want a 503 answer", err)
	}
	s.Undrain()
}
