package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3 serves HTTP/3 on the UDP side of the TLS listener's address, with the same handler and
// certificates.
type h3 struct {
	tr   *quic.Transport
	ln   *quic.Listener
	srv  *http3.Server
	port int
}

// newH3 binds UDP at addr (the TLS listener's bound address, so both share a port). 0-RTT is
// off: replayed early data could repeat a non-idempotent request. Clients must validate their
// address with a Retry once more than retryAbove handshakes per second come from unvalidated
// addresses (negative: always).
func newH3(addr net.Addr, tlsCfg *tls.Config, handler http.Handler, cfg ServerConfig) (*h3, error) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("http3: TLS listener address %v is not TCP", addr)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ta.IP, Port: ta.Port, Zone: ta.Zone})
	if err != nil {
		return nil, fmt.Errorf("listen %s (udp, HTTP/3): %w", addr, err)
	}
	rate := &handshakeRate{limit: cfg.H3RetryAbove}
	tr := &quic.Transport{Conn: pc, VerifySourceAddress: func(net.Addr) bool { return rate.busy(time.Now()) }}
	qc := &quic.Config{
		Allow0RTT:          false,
		MaxIncomingStreams: int64(cfg.H2MaxConcurrentStreams),
		MaxIdleTimeout:     cfg.IdleTimeout,
	}
	ln, err := tr.Listen(http3.ConfigureTLSConfig(tlsCfg), qc)
	if err != nil {
		_ = tr.Close()
		return nil, fmt.Errorf("http3: %w", err)
	}
	return &h3{
		tr:   tr,
		ln:   ln,
		port: ta.Port,
		srv: &http3.Server{
			Handler:        handler,
			MaxHeaderBytes: cfg.MaxHeaderBytes,
			IdleTimeout:    cfg.IdleTimeout,
			Port:           ta.Port,
		},
	}, nil
}

// altSvc is the Alt-Svc value that announces HTTP/3 on TCP responses.
func (h *h3) altSvc() string { return `h3=":` + strconv.Itoa(h.port) + `"; ma=86400` }

// serve serves until the server is shut down or closed; that ending is no error.
func (h *h3) serve() error {
	err := h.srv.ServeListener(h.ln)
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("http3: %w", err)
}

// shutdown sends GOAWAY to every connection and waits for their requests until ctx ends.
func (h *h3) shutdown(ctx context.Context) { _ = h.srv.Shutdown(ctx) }

// close cuts what is left and releases the UDP socket.
func (h *h3) close() {
	_ = h.srv.Close()
	_ = h.ln.Close()
	_ = h.tr.Close()
}

// handshakeRate counts handshakes from unvalidated addresses per second.
type handshakeRate struct {
	limit int // per second; negative: every handshake is "busy"

	mu     sync.Mutex
	window time.Time
	n      int
}

// busy counts one handshake and reports whether the limit is passed this second.
func (r *handshakeRate) busy(now time.Time) bool {
	if r.limit < 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.window) >= time.Second {
		r.window, r.n = now, 0
	}
	r.n++
	return r.n > r.limit
}
