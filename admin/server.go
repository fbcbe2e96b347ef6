package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/veloflux/veloflux/admin/ui"
)

// Controller is what the admin API reads and drives; admin/views implements it over the node.
// Methods are called from request goroutines, concurrently, and must be safe for that. The
// values returned are JSON-encoded as they are, so they must not hold secrets.
type Controller interface {
	Status() any // node status
	Pools() any  // pools with their backends (health, active connections, weight)
	Routes() any
	Config() any // effective config; the caller has already redacted secrets
	Health() any // per backend: the health verdict, each observer's last result, why it is out
	Drain()
	Undrain()
	// DrainBackend drains (drained true) or undrains one backend on every node of the cluster.
	// An ID no pool has must return an error wrapping ErrUnknownBackend.
	DrainBackend(id string, drained bool) error
	Stats() any    // request and error counts, latency buckets, certificate expiry
	Sessions() any // stored sticky-session moves by backend
	// PeerAdmin returns the host (name or IP) of a live cluster member other than this node,
	// and the port of its admin API, 0 when the member does not say (its admin API is then
	// taken to listen on the same port as this one). A name that is not such a member must
	// return an error wrapping ErrUnknownPeer.
	PeerAdmin(node string) (host string, port int, err error)
}

// ErrUnknownBackend is what Controller.DrainBackend returns for an ID no pool has; the API
// answers it with 404.
var ErrUnknownBackend = errors.New("unknown backend")

// ErrUnknownPeer is what Controller.PeerAdmin returns for a name that is not a live peer; the
// API answers it with 404.
var ErrUnknownPeer = errors.New("unknown peer")

// apiError is a reply that is an error with its HTTP status.
type apiError struct {
	status int
	msg    string
}

// Server is the admin HTTP API. Create it with New, then either call Run, or call Listen
// (to learn the bound address from Addr before serving, as tests on port 0 do) and then Serve.
// A Server serves once.
type Server struct {
	cfg    Config
	ctrl   Controller
	log    *slog.Logger
	guard  *guard // nil when no credentials are configured
	csrf   *http.CrossOriginProtection
	routes map[string]route
	ui     http.Handler
	// peers forwards /admin/peers/NODE/ENDPOINT to the peer's admin API.
	peers *http.Client

	// now is the lockout clock. Tests replace it to step past a lockout without sleeping.
	now func() time.Time

	mu      sync.Mutex
	ln      net.Listener
	serving bool
}

// route is one endpoint: the method it takes and what it answers.
type route struct {
	methods []string
	allow   string // Allow header for a 405
	reply   func(*http.Request) any
}

// New checks cfg and returns a Server driving ctrl. It fails if cfg does not Validate, most
// importantly when credentials are half set or missing on a non-loopback address. logger is
// used as given (cmd names the component, as for every package); nil discards logs.
func New(cfg Config, ctrl Controller, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admin: invalid config: %w", err)
	}
	if ctrl == nil {
		return nil, errors.New("admin: nil Controller")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:  cfg,
		ctrl: ctrl,
		log:  logger,
		// The zero value rejects cross-site browser POSTs (by Sec-Fetch-Site or Origin) and
		// lets non-browser clients such as curl through. Browsers replay cached basic-auth
		// credentials on cross-site form posts, so without it any web page an operator opens
		// could drain the node.
		csrf:  http.NewCrossOriginProtection(),
		now:   time.Now,
		ui:    ui.Handler(),
		peers: newPeerClient(),
	}
	if cfg.User != "" {
		g, err := newGuard(cfg)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.guard = g
	}
	get := []string{http.MethodGet, http.MethodHead}
	post := []string{http.MethodPost}
	s.routes = map[string]route{
		"/admin/status":   {get, "GET, HEAD", func(*http.Request) any { return ctrl.Status() }},
		"/admin/pools":    {get, "GET, HEAD", func(*http.Request) any { return ctrl.Pools() }},
		"/admin/routes":   {get, "GET, HEAD", func(*http.Request) any { return ctrl.Routes() }},
		"/admin/config":   {get, "GET, HEAD", func(*http.Request) any { return ctrl.Config() }},
		"/admin/health":   {get, "GET, HEAD", func(*http.Request) any { return ctrl.Health() }},
		"/admin/stats":    {get, "GET, HEAD", func(*http.Request) any { return ctrl.Stats() }},
		"/admin/sessions": {get, "GET, HEAD", func(*http.Request) any { return ctrl.Sessions() }},
		"/admin/backends/drain": {post, "POST", func(r *http.Request) any {
			return s.drainBackend(r, true)
		}},
		"/admin/backends/undrain": {post, "POST", func(r *http.Request) any {
			return s.drainBackend(r, false)
		}},
		"/admin/drain": {post, "POST", func(r *http.Request) any {
			ctrl.Drain()
			s.log.Info("node drained via admin API", slog.String("remote_ip", peerIP(r.RemoteAddr).String()))
			return ctrl.Status()
		}},
		"/admin/undrain": {post, "POST", func(r *http.Request) any {
			ctrl.Undrain()
			s.log.Info("node undrained via admin API", slog.String("remote_ip", peerIP(r.RemoteAddr).String()))
			return ctrl.Status()
		}},
	}
	return s, nil
}

// drainBackend drains or undrains the backend named by the `backend` query parameter and
// answers the health view, which shows the drain.
func (s *Server) drainBackend(r *http.Request, drained bool) any {
	id := r.URL.Query().Get("backend")
	if id == "" {
		return apiError{http.StatusBadRequest, "missing query parameter backend (a backend ID as /admin/pools shows it)"}
	}
	if err := s.ctrl.DrainBackend(id, drained); err != nil {
		if errors.Is(err, ErrUnknownBackend) {
			return apiError{http.StatusNotFound, fmt.Sprintf("no backend %q in any pool", id)}
		}
		return apiError{http.StatusBadRequest, err.Error()}
	}
	action := "backend drained via admin API"
	if !drained {
		action = "backend undrained via admin API"
	}
	s.log.Info(action, slog.String("backend", id), slog.String("remote_ip", peerIP(r.RemoteAddr).String()))
	return s.ctrl.Health()
}

// Handler returns the API's handler, authentication included, for mounting or for tests.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Admin answers describe live state and are for one authenticated reader.
	w.Header().Set("Cache-Control", "no-store")
	if s.guard != nil {
		if !s.authenticate(w, r) {
			return
		}
	} else if !loopbackHostHeader(r.Host) {
		// Without credentials the only guard is that the socket is on loopback. A DNS
		// rebinding page reaches that socket under its own host name, with the browser
		// treating it as same-origin, so refuse any Host that is not a loopback name.
		s.writeError(w, http.StatusForbidden, fmt.Sprintf("host %q not allowed: the admin API without credentials answers only to loopback host names", r.Host))
		return
	}
	if err := s.csrf.Check(r); err != nil {
		s.writeError(w, http.StatusForbidden, "cross-origin request refused: "+err.Error())
		return
	}
	if r.URL.Path == "/" || r.URL.Path == "/ui" {
		http.Redirect(w, r, "/ui/", http.StatusFound)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/ui/") {
		s.ui.ServeHTTP(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, peersPrefix); ok {
		s.forward(w, r, rest)
		return
	}
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.writeError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint at %s", r.URL.Path))
		return
	}
	if !methodIn(r.Method, rt.methods) {
		w.Header().Set("Allow", rt.allow)
		s.writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, rt.allow))
		return
	}
	v := rt.reply(r)
	if e, ok := v.(apiError); ok {
		s.writeError(w, e.status, e.msg)
		return
	}
	s.writeJSON(w, http.StatusOK, v)
}

func methodIn(m string, ms []string) bool {
	for _, x := range ms {
		if m == x {
			return true
		}
	}
	return false
}

// loopbackHostHeader reports whether a Host header names loopback: "localhost" or a loopback
// IP, with or without a port.
func loopbackHostHeader(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return isLoopbackHost(host)
}

type errorBody struct {
	Error string `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, status int, msg string) {
	s.writeJSON(w, status, errorBody{Error: msg})
}

// writeJSON encodes v before writing anything, so an encoding failure becomes a clean 500
// rather than a 200 with half a body.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode admin response", slog.Any("error", err))
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: fmt.Sprintf("encode response: %v", err)})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// A client that hung up mid-body has nobody left to tell.
	_, _ = w.Write(append(body, '\n'))
}

// Listen binds cfg.Address. After it returns nil, Addr reports the bound address (useful with
// port 0). Serve must follow, even with a done context, to release the listener.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return fmt.Errorf("admin: already listening on %s", s.ln.Addr())
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Address, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen (or Run) has bound it.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers requests on the listener bound by Listen until ctx ends, then shuts down:
// it stops accepting, waits up to cfg.ShutdownTimeout for in-flight requests, and closes
// what is left. It returns nil after a clean shutdown, and an error if the listener fails
// or in-flight requests outlast the timeout.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln, served := s.ln, s.serving
	s.serving = true
	s.mu.Unlock()
	if ln == nil {
		return errors.New("admin: Serve called before Listen")
	}
	if served {
		return errors.New("admin: Serve called twice")
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second, // no endpoint takes a body
		WriteTimeout:      30 * time.Second, // pools of a large cluster are the biggest answer
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10, // basic auth and a browser's headers fit many times over
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc // Shutdown closed the listener, so Serve has returned or is about to.
	s.peers.CloseIdleConnections()
	if err != nil {
		closeErr := srv.Close()
		return fmt.Errorf("admin: shutdown: %w", errors.Join(err, closeErr))
	}
	return nil
}

// Run binds cfg.Address (unless Listen already did) and serves until ctx ends. Listen errors,
// such as the address being in use, are returned at once.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	return s.Serve(ctx)
}
