package h2guard

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// okHandler stands for a proxied request: it answers at once.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})

// streamHandler writes 1 MiB chunks until the client goes away or 256 MiB are out, so that
// the server is writing large DATA frames whenever a test needs it to.
func streamHandler(w http.ResponseWriter, r *http.Request) {
	chunk := make([]byte, 1<<20)
	for range 256 {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		if r.Context().Err() != nil {
			return
		}
	}
}

func TestFloodIsClosedWithGoAway(t *testing.T) {
	// The window is an hour so that no reset is late on a slow machine.
	cfg := Config{MinStreams: 500, PrematureWindow: time.Hour}
	s := startServer(t, cfg, okHandler)
	c := s.dial(t)

	var ga goAway
	readErr := make(chan error, 1)
	go func() { readErr <- c.readAll(ga.note) }()
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		c.flood(100_000, "/")
	}()

	var err error
	select {
	case err = <-readErr:
	case <-time.After(waitLimit):
		t.Fatal("the connection was not closed")
	}
	wait(t, flooded, "the flood to stop")
	s.waitServed(t)

	if !ga.seen || ga.code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY seen %v with code %v, want ENHANCE_YOUR_CALM", ga.seen, ga.code)
	}
	// The verdict comes with the reset of the 500th stream, id 999, and the server never
	// sees that reset nor anything after it.
	if ga.lastStream != 999 {
		t.Errorf("GOAWAY last stream id %d, want 999", ga.lastStream)
	}
	if ga.after != 0 {
		t.Errorf("%d frames after GOAWAY, want none", ga.after)
	}
	if !closedCleanly(err) {
		t.Errorf("reading ended with %v, want the connection closed", err)
	}
	if n := s.abuses.Load(); n != 1 {
		t.Errorf("onAbuse called %d times, want 1", n)
	}
	if n := s.handled.Load(); n > int64(cfg.MinStreams) {
		t.Errorf("handler ran %d times for a flood stopped at stream %d", n, cfg.MinStreams)
	}
}

// request is one step of a client: a complete request, or one reset right after HEADERS.
func (c *client) request(t *testing.T, block []byte, reset bool, ga *goAway) error {
	t.Helper()
	var id uint32
	err := c.tryWrite(func() error {
		var err error
		if id, err = c.open(block); err != nil || !reset {
			return err
		}
		return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
	if err != nil || reset {
		return err
	}
	return c.until(t, ga, func(f http2.Frame) bool {
		return f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream)
	})
}

// errGoAway stops a client that received GOAWAY.
var errGoAway = errors.New("GOAWAY received")

// until reads frames, answering SETTINGS and PING as a client must, until done returns
// true for one. It returns errGoAway when GOAWAY comes first.
func (c *client) until(t *testing.T, ga *goAway, done func(http2.Frame) bool) error {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		ga.note(f)
		if ga.seen {
			return errGoAway
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.write(t, c.fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(t, func() error { return c.fr.WritePing(true, f.Data) })
			}
		}
		if done(f) {
			return nil
		}
	}
}

func TestClientsJudgedByPrematureResetRatio(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		requests int
		reset    func(i int) bool
		closed   bool
		lastID   uint32 // GOAWAY's last stream id when closed
	}{
		{
			name:     "sequential complete requests",
			cfg:      DefaultConfig(),
			requests: 2000,
			reset:    func(int) bool { return false },
		},
		{
			name:     "a few resets among many requests",
			cfg:      DefaultConfig(),
			requests: 2000,
			reset:    func(i int) bool { return i%50 == 0 },
		},
		{
			// A third of the streams reset at once is under half, however small MinStreams.
			name:     "one stream in three reset",
			cfg:      Config{MinStreams: 10, PrematureWindow: time.Hour},
			requests: 300,
			reset:    func(i int) bool { return i%3 == 0 },
		},
		{
			// Resets of streams 1, 3, 7, 9, 13, 15, 19: seven of ten when the tenth opens.
			name:     "two streams in three reset",
			cfg:      Config{MinStreams: 10, PrematureWindow: time.Hour},
			requests: 300,
			reset:    func(i int) bool { return i%3 != 2 },
			closed:   true,
			lastID:   19,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.cfg, okHandler)
			c := s.dial(t)
			block := headerBlock("/")
			var ga goAway
			var err error
			for i := 0; i < tc.requests && err == nil; i++ {
				err = c.request(t, block, tc.reset(i), &ga)
			}
			if !tc.closed {
				if err != nil {
					t.Fatalf("requests failed: %v", err)
				}
				// A PING answered after the last request shows the connection is open.
				c.write(t, func() error { return c.fr.WritePing(false, [8]byte{'a', 'l', 'i', 'v', 'e'}) })
				err = c.until(t, &ga, func(f http2.Frame) bool {
					p, ok := f.(*http2.PingFrame)
					return ok && p.IsAck()
				})
				if err != nil {
					t.Fatalf("waiting for PING ack: %v", err)
				}
				if n := s.abuses.Load(); n != 0 {
					t.Errorf("onAbuse called %d times for a client that is not abusive", n)
				}
				if n := s.noTLS.Load(); n != 0 {
					t.Errorf("%d of %d requests had no TLS state", n, s.handled.Load())
				}
				return
			}
			if !errors.Is(err, errGoAway) {
				t.Fatalf("requests ended with %v, want GOAWAY", err)
			}
			if ga.code != http2.ErrCodeEnhanceYourCalm || ga.lastStream != tc.lastID {
				t.Errorf("GOAWAY %v last stream %d, want ENHANCE_YOUR_CALM last stream %d", ga.code, ga.lastStream, tc.lastID)
			}
			if err := c.readAll(ga.note); !closedCleanly(err) {
				t.Errorf("after GOAWAY, reading ended with %v, want the connection closed", err)
			}
			s.waitServed(t)
			if n := s.abuses.Load(); n != 1 {
				t.Errorf("onAbuse called %d times, want 1", n)
			}
		})
	}
}

func TestGoAwayKeepsServerOutputFramed(t *testing.T) {
	large := strings.Repeat("x", 40<<10)
	for _, tc := range []struct {
		name string
		// header is a response header value for the flood's streams; a large one makes
		// each response a HEADERS frame and CONTINUATION frames, a block GOAWAY must not split.
		header      string
		split, hold int // see serverOptions
	}{
		{name: "DATA in flight"},
		{name: "DATA in flight, output in pieces", split: 1000},
		{name: "DATA in flight, output ending inside a frame", hold: 100},
		{name: "header blocks in flight", header: large},
		{name: "header blocks in flight, output in pieces ending inside a frame", header: large, split: 1000, hold: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/stream", streamHandler)
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("X-Large", tc.header)
				}
				io.WriteString(w, "ok")
			})
			cfg := Config{MinStreams: 500, PrematureWindow: time.Hour}
			// The guard's timeout is half the test's, so that a GOAWAY that never comes
			// is reported as the read error it causes.
			s := startServerWith(t, cfg, mux, serverOptions{split: tc.split, hold: tc.hold, timeout: waitLimit / 2})
			c := s.dial(t)

			// Four responses of endless DATA keep the server's output busy.
			const streams = 4
			block := headerBlock("/stream")
			c.write(t, func() error {
				for range streams {
					if _, err := c.open(block); err != nil {
						return err
					}
				}
				return nil
			})

			var (
				ga       goAway
				data     int // DATA bytes of the streaming responses before GOAWAY
				ended    int // streaming responses complete before GOAWAY
				flowing  = make(chan struct{})
				readErr  = make(chan error, 1)
				dataSeen = map[uint32]bool{}
			)
			go func() {
				readErr <- c.readAll(func(f http2.Frame) {
					if ga.note(f); ga.seen {
						if ga.after == 0 {
							// Done, as a client should be: the guard closes once it
							// reads the end of the client's side.
							c.conn.CloseWrite()
						}
						return
					}
					d, ok := f.(*http2.DataFrame)
					if !ok || d.StreamID > 2*streams {
						return
					}
					data += len(d.Data())
					if d.StreamEnded() {
						ended++
					}
					if !dataSeen[d.StreamID] {
						dataSeen[d.StreamID] = true
						if len(dataSeen) == streams {
							close(flowing)
						}
					}
				})
			}()
			wait(t, flowing, "DATA on every streaming response")
			flooded := make(chan struct{})
			go func() {
				defer close(flooded)
				c.flood(100_000, "/")
			}()

			var err error
			select {
			case err = <-readErr:
			case <-time.After(waitLimit):
				t.Fatal("the connection was not closed")
			}
			wait(t, flooded, "the flood to stop")
			s.waitServed(t)

			// The Framer fails on a frame cut short, a CONTINUATION missing, or a header
			// block that does not decode: a clean end means the GOAWAY went in between frames.
			if !closedCleanly(err) {
				t.Fatalf("reading ended with %v, want the connection closed", err)
			}
			if !ga.seen || ga.code != http2.ErrCodeEnhanceYourCalm || ga.lastStream != 999 {
				t.Fatalf("GOAWAY seen %v with code %v, last stream %d; want ENHANCE_YOUR_CALM, 999", ga.seen, ga.code, ga.lastStream)
			}
			if ga.after != 0 {
				t.Errorf("%d frames after GOAWAY, want none", ga.after)
			}
			if ended != 0 || data == 0 {
				t.Errorf("before GOAWAY: %d bytes of DATA, %d streaming responses complete; want DATA still flowing", data, ended)
			}
			if n := s.abuses.Load(); n != 1 {
				t.Errorf("onAbuse called %d times, want 1", n)
			}
		})
	}
}

func TestClientThatDoesNotReadIsClosed(t *testing.T) {
	// The server writes endless DATA to a client that never reads, so its writes block,
	// possibly in the middle of a frame: the guard cannot write GOAWAY and must close
	// the connection anyway.
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", streamHandler)
	mux.Handle("/", okHandler)
	s := startServer(t, Config{MinStreams: 500, PrematureWindow: time.Hour}, mux)
	c := s.dial(t)
	block := headerBlock("/stream")
	c.write(t, func() error {
		_, err := c.open(block)
		return err
	})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		c.flood(100_000, "/")
	}()
	wait(t, s.abused, "onAbuse")
	s.waitServed(t)
	c.conn.Close() // a flood still writing fails now
	wait(t, flooded, "the flood to stop")
	if n := s.abuses.Load(); n != 1 {
		t.Errorf("onAbuse called %d times, want 1", n)
	}
}

// tcpPair returns both ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

func TestWrapPassesConnThrough(t *testing.T) {
	t.Run("plain TCP has no ConnectionState", func(t *testing.T) {
		raw, peer := tcpPair(t)
		g := Wrap(raw, DefaultConfig(), nil)
		if _, ok := g.(connectionStater); ok {
			t.Error("a guard around a plain connection has ConnectionState; a server would take it for TLS")
		}
		if g.LocalAddr() != raw.LocalAddr() || g.RemoteAddr() != raw.RemoteAddr() {
			t.Errorf("addresses %v %v, want %v %v", g.LocalAddr(), g.RemoteAddr(), raw.LocalAddr(), raw.RemoteAddr())
		}
		if err := g.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past the deadline: %v, want deadline exceeded", err)
		}
		if err := g.SetDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := g.SetWriteDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(peer)
		if string(got) != "hello" || err != nil {
			t.Errorf("peer read %q, %v; want hello and EOF", got, err)
		}
	})
	t.Run("TLS keeps ConnectionState", func(t *testing.T) {
		raw, peer := tcpPair(t)
		cert, pool := newCert(t)
		srv := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		cli := tls.Client(peer, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		handshake := make(chan error, 1)
		go func() { handshake <- cli.Handshake() }()
		if err := srv.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-handshake; err != nil {
			t.Fatal(err)
		}
		g, ok := Wrap(srv, DefaultConfig(), nil).(connectionStater)
		if !ok {
			t.Fatal("a guard around a TLS connection has no ConnectionState")
		}
		got, want := g.ConnectionState(), srv.ConnectionState()
		if got.Version != want.Version || got.NegotiatedProtocol != "h2" || !got.HandshakeComplete {
			t.Errorf("ConnectionState version %x protocol %q complete %v, want %x h2 true",
				got.Version, got.NegotiatedProtocol, got.HandshakeComplete, want.Version)
		}
	})
}
