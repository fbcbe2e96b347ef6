package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/veloflux/veloflux/acme"
	"github.com/veloflux/veloflux/admin"
	"github.com/veloflux/veloflux/admin/views"
	"github.com/veloflux/veloflux/certs"
	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/internal/gcfloor"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/proxy"
	"github.com/veloflux/veloflux/telemetry"
	"github.com/veloflux/veloflux/telemetry/tracing"
)

// app is one running VeloFlux node: the concrete parts and the config they were built from.
type app struct {
	path    string
	environ []string
	log     *slog.Logger
	level   *slog.LevelVar
	reg     *prometheus.Registry
	started time.Time
	// pace lets reloads and discovery updates step aside for the requests every slice of
	// their work; closed when the node stops.
	pace *pace.Pacer

	proxy   *proxy.Proxy
	server  *proxy.Server
	checker *health.Checker
	passive *health.Passive
	// consensus decides from the observations of every node (from this node's alone without a
	// cluster) and tells the checker which backends are this node's to probe.
	consensus *consensus.View
	routing   *routing
	// consul is nil unless discovery.consul is enabled, register unless its register is too.
	consul   *consul.Source
	register *registration
	// geo is nil unless geo.database is set (at start: the database is opened once).
	geo *geo.Locator
	// certs serves the TLS listener's certificates from files; nil without a TLS listener or
	// with auto_cert.
	certs *certs.Store
	// acme obtains and serves the TLS listener's certificates with auto_cert; nil without.
	acme *acme.Manager
	// cluster is nil unless cluster.enabled.
	cluster *cluster
	// drains are the backends operators drained (cluster-wide with a cluster).
	drains *gossip.Drains
	// tracing is nil unless tracing.enabled.
	tracing *tracing.Provider
	// sessions are the sticky-session pins the proxy uses: the cluster's with a cluster.
	sessions views.SessionCounter
	// admin is nil without global.admin_address; once newApp returns, it is bound.
	admin *admin.Server
	// metrics is nil without global.metrics_address; metricsLn is its bound listener.
	metrics   *http.Server
	metricsLn net.Listener

	reloads      *prometheus.CounterVec
	reloadOKTime prometheus.Gauge

	// serving is closed once run has started every part; readyFile, when set, is written then.
	serving   chan struct{}
	readyFile string

	mu         sync.Mutex // guards cfg and lastReload; serialises reloads
	cfg        *config.Config
	lastReload views.Reload
}

// serve runs a node until SIGTERM or SIGINT, then drains and returns nil. With readyFile
// set, the node writes its bound addresses there once every part runs (see writeReady).
func serve(path, readyFile string, environ []string, stderr io.Writer) error {
	if readyFile != "" {
		// A file left by an earlier run must not announce this one before it is up.
		if err := os.Remove(readyFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ready file: %w", err)
		}
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		return fmt.Errorf("config %s:\n%w", path, err)
	}
	log, level, err := telemetry.NewLogger(stderr, cfg.Global.LogLevel)
	if err != nil {
		return err
	}
	a, err := newApp(path, environ, cfg, log, level)
	if err != nil {
		return err
	}
	a.readyFile = readyFile
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return a.run(ctx, hup)
}

// newApp builds every part of the node and binds every listener (proxy, metrics, admin), so
// that run only starts them: nothing a running part or an admin request can read is assigned
// after newApp returns. On an error it releases what it had opened and returns no app.
func newApp(path string, environ []string, cfg *config.Config, log *slog.Logger, level *slog.LevelVar) (_ *app, err error) {
	a := &app{
		path: path, environ: environ, log: log, level: level, cfg: cfg,
		serving: make(chan struct{}),
		reg:     telemetry.NewRegistry(version),
		started: time.Now(),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		reloadOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veloflux_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration that was applied, start-up included.",
		}),
	}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	a.reg.MustRegister(a.reloads, a.reloadOKTime)
	if a.pace, err = pace.New(0); err != nil {
		return nil, err
	}
	warnWithoutStickySecret(cfg, log)
	if err := a.build(); err != nil {
		return nil, err
	}
	if err := a.bind(); err != nil {
		return nil, err
	}
	if err := a.buildAfterBind(); err != nil {
		return nil, err
	}
	a.reloadOKTime.SetToCurrentTime()
	a.lastReload = views.Reload{At: time.Now(), OK: true}
	return a, nil
}

// build makes the node's parts from a.cfg. Of them only the geo database holds anything open
// before it runs.
func (a *app) build() error {
	cfg, log := a.cfg, a.log
	var err error
	a.checker, a.passive, err = newHealthChecks(cfg, log, a.reg)
	if err != nil {
		return err
	}
	a.passive.SetPacer(a.pace)
	local := proxy.NewLocalSessions(0)
	var sessions proxy.SessionStore = local
	a.sessions = local
	if cfg.Cluster.Enabled {
		if a.cluster, err = a.newCluster(cfg); err != nil {
			return err
		}
		sessions = a.cluster.sessions // pins shared by every node of the cluster
		a.sessions = a.cluster.sessions
	}
	if a.drains, err = newDrains(a.cluster); err != nil {
		return err
	}
	if a.consensus, err = newConsensus(cfg, a.cluster, a.checker, a.passive, log, a.reg); err != nil {
		return err
	}
	if a.tracing, err = a.newTracing(cfg); err != nil {
		return err
	}
	opts := proxy.Options{
		Health:       healthView{drains: a.drains, passive: a.passive, consensus: a.consensus},
		Passive:      a.passive, // as it is: health.Outcome is proxy.Outcome (internal/attempt)
		Sessions:     sessions,
		Logger:       log.With("component", "proxy"),
		AccessLogger: log.With("component", "access"),
		Registerer:   a.reg,
		Transport:    transportConfig(cfg),
		Pacer:        a.pace,
	}
	if a.tracing != nil {
		opts.TracerProvider = a.tracing.TracerProvider()
		opts.TraceSampler = a.tracing.HeadSampler()
		opts.TraceTrust = traceTrust(cfg.Tracing.TrustIncoming)
	}
	if cfg.Geo.Database != "" {
		a.geo, err = geo.New(cfg.Geo, log.With("component", "geo"), a.reg)
		if err != nil {
			return err
		}
		opts.Locator = a.geo // only a non-nil *geo.Locator goes into the interface
		opts.GeoResponseHeader = cfg.Geo.ResponseHeader
		opts.RedirectHosts = redirectHosts(cfg)
	}
	a.proxy, err = proxy.New(proxyConfig(cfg), opts)
	if err != nil {
		return err
	}
	if a.acme, err = newACME(cfg, log.With("component", "acme"), a.reg); err != nil {
		return err
	}
	a.routing = &routing{proxy: a.proxy, consensus: a.consensus, passive: a.passive, pace: a.pace, log: log.With("component", "discovery"), geoEnabled: a.geo != nil}
	if a.acme != nil {
		a.routing.onHosts = a.acme.SetNames
	}
	if err := a.routing.setStatic(cfg); err != nil {
		return err
	}
	if a.certs, err = newCertStore(cfg, log.With("component", "tls"), a.reg); err != nil {
		return err
	}
	sc, err := serverConfig(cfg, a.certs, a.acme)
	if err != nil {
		return err
	}
	a.server, err = proxy.NewServer(sc, a.proxy, log.With("component", "server"))
	if err != nil {
		return err
	}
	if cfg.Discovery.Consul.Enabled {
		// Nothing is contacted before it runs; while Consul is down, it retries with backoff.
		a.consul, err = consul.New(cfg.Discovery.Consul, log.With("component", "consul"), a.reg)
		if err != nil {
			return err
		}
	}
	if cfg.Global.MetricsAddress != "" {
		a.metrics = &http.Server{
			Addr:              cfg.Global.MetricsAddress,
			Handler:           telemetry.MetricsMux(a.reg, a.ready),
			ReadHeaderTimeout: 5 * time.Second,
		}
	}
	return nil
}

// bind binds the proxy's and the metrics listeners.
func (a *app) bind() error {
	if err := a.server.Listen(); err != nil {
		return err
	}
	if a.metrics != nil {
		ln, err := listen(a.metrics.Addr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		a.metricsLn = ln
	}
	return nil
}

// buildAfterBind makes the parts that need the bound addresses: the Consul registration
// (the proxy's port, the metrics listener's /readyz) and the admin API, which shows every
// other part and is bound last.
func (a *app) buildAfterBind() error {
	cfg := a.cfg
	if a.acme != nil {
		addrs := a.server.Addrs() // the plain listener, then the TLS listener
		if err := a.acme.SetListeners(addrs[0].String(), addrs[1].String()); err != nil {
			return err
		}
	}
	if a.consul != nil && cfg.Discovery.Consul.Register.Enabled {
		metricsAddr := ""
		if a.metricsLn != nil {
			metricsAddr = a.metricsLn.Addr().String()
		}
		var err error
		a.register, err = newRegistration(a, a.server.Addrs()[0].String(), metricsAddr)
		if err != nil {
			return err
		}
	}
	if cfg.Global.AdminAddress != "" {
		ac := admin.DefaultConfig()
		ac.Address = cfg.Global.AdminAddress
		ac.User = getenv(a.environ, "VF_ADMIN_USER")
		pass, err := adminPassword(a.environ)
		if err != nil {
			return err
		}
		ac.Password = pass
		ctrl, err := a.adminViews()
		if err != nil {
			return err
		}
		if a.admin, err = admin.New(ac, ctrl, a.log.With("component", "admin")); err != nil {
			return err
		}
		if err := a.admin.Listen(); err != nil {
			return err
		}
	}
	return nil
}

// adminViews is what the admin API shows and drives: every part, built by now.
func (a *app) adminViews() (*views.Controller, error) {
	p := views.Parts{
		Version: version, Started: a.started, ConfigFile: a.path,
		Proxy: a.proxy, Server: a.server,
		Checker: a.checker, Passive: a.passive, Consensus: a.consensus, Drains: a.drains,
		Consul:          a.consul,
		Running:         a.running,
		SourceConflicts: a.routing.conflictsNow,
		SetDraining:     a.setDraining,
		Metrics:         a.reg,
		Sessions:        a.sessions,
		Log:             a.log.With("component", "admin"),
	}
	if a.acme != nil {
		p.ACME = func() any { return a.acme.Status() }
	}
	if a.cluster != nil {
		p.Cluster = &views.Cluster{Name: a.cluster.name, Node: a.cluster.node, Store: a.cluster.store}
	}
	return views.New(p)
}

// running returns the configuration in use and the result of the last load.
func (a *app) running() (*config.Config, views.Reload) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg, a.lastReload
}

// release frees what newApp opened, for a node that will not run: the bound listeners and
// the geo database. The admin server and the locator let go of what they hold when run with a
// context that has already ended.
func (a *app) release() {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if a.admin != nil && a.admin.Addr() != nil {
		_ = a.admin.Serve(ended)
	}
	if a.metricsLn != nil {
		_ = a.metricsLn.Close()
	}
	if a.server != nil {
		a.server.Close()
	}
	if a.proxy != nil {
		a.proxy.Close()
	}
	if a.geo != nil {
		_ = a.geo.Run(ended)
	}
	if a.acme != nil {
		a.acme.Close()
	}
	if a.tracing != nil {
		_ = a.tracing.Run(ended)
	}
	_ = a.pace.Close()
}

// warnWithoutStickySecret warns when sticky pools run on the proxy's random per-process key:
// their cookies then die with the process and differ between nodes.
func warnWithoutStickySecret(cfg *config.Config, log *slog.Logger) {
	if cfg.Sticky.Secret != "" {
		return
	}
	for _, p := range cfg.Pools {
		if p.StickySessions {
			log.Warn("sticky.secret is not set: using a random key; sticky cookies will not survive a restart or work across nodes (set VFX_STICKY_SECRET)")
			return
		}
	}
}

func (a *app) ready() (bool, string) {
	if a.proxy.Draining() {
		return false, "draining"
	}
	return true, ""
}

// part is one long-running part of the node: it runs until its context ends.
type part struct {
	name string
	run  func(context.Context) error
}

// parts lists every long-running part but the proxy server, all built by newApp; hup is the
// SIGHUP channel the config watch reloads on.
func (a *app) parts(hup <-chan os.Signal) []part {
	a.mu.Lock()
	gcMinHeap := a.cfg.Global.GCMinHeap // read at start only, like the listeners
	a.mu.Unlock()
	ps := []part{
		{"health", a.checker.Run},
		{"health consensus", a.consensus.Run},
		{"passive health", a.passive.Run},
		{"config watch", func(ctx context.Context) error { return a.watch(ctx, hup) }},
		{"gc floor", gcfloor.New(int64(gcMinHeap)).Run},
	}
	if a.geo != nil {
		ps = append(ps, part{"geo", a.geo.Run})
	}
	if a.certs != nil {
		ps = append(ps, part{"certificates", a.certs.Run})
	}
	if a.acme != nil {
		ps = append(ps, part{"acme", a.acme.Run})
	}
	if a.cluster != nil {
		ps = append(ps, part{"gossip", a.cluster.node.Run}, part{"gossip state", a.cluster.store.Run})
	}
	if a.admin != nil {
		ps = append(ps, part{"admin", a.admin.Serve})
	}
	if a.metrics != nil {
		ps = append(ps, part{"metrics", func(ctx context.Context) error { return serveUntil(ctx, a.metrics, a.metricsLn) }})
	}
	if a.consul != nil {
		ps = append(ps, part{"consul", func(ctx context.Context) error { return a.consul.Run(ctx, a.routing.setConsul) }})
	}
	if a.register != nil {
		ps = append(ps, part{"consul register", a.register.Run})
	}
	if a.tracing != nil {
		// On the parts' context: spans of the drain are still exported, then the rest.
		ps = append(ps, part{"tracing", a.tracing.Run})
	}
	return ps
}

// run runs every part of the node built by newApp under one errgroup until ctx ends or a
// part fails, reloading on hup. Then it stops them in order: the proxy drains first while
// the other parts keep running (the metrics listener's /readyz answers 503, the admin API
// answers, the cluster and Consul hear of the drain), and they stop once it has drained.
// It returns every error the parts returned, joined, or nil after a clean stop. run is
// called once.
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	// g's context ends with ctx or at the first failure: the proxy serves on it.
	g, gctx := errgroup.WithContext(stopCtx)
	// The other parts run on their own context, ended once the proxy has drained.
	auxCtx, stopAux := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAux()

	var mu sync.Mutex
	var errs []error
	failed := func(name string, err error) error {
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s: %w", name, err)
		a.log.Error("component failed, shutting down", "component", name, "error", err.Error())
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return err
	}

	announced := make(chan struct{})
	g.Go(func() error {
		<-gctx.Done()
		a.setDraining(true) // tell the cluster and Consul at once, while the proxy drains
		close(announced)
		return nil
	})
	g.Go(func() error {
		err := a.server.Serve(gctx) // returns once drained
		stop()                      // a listener that failed stops the node too
		<-announced
		stopAux()
		return failed("proxy", err)
	})
	for _, p := range a.parts(hup) {
		g.Go(func() error { return failed(p.name, p.run(auxCtx)) })
	}

	attrs := []any{"config", a.path, "version", version}
	for i, addr := range a.server.Addrs() {
		attrs = append(attrs, fmt.Sprintf("listener%d", i), addr.String())
	}
	if a.admin != nil {
		attrs = append(attrs, "admin", a.admin.Addr().String())
	}
	if a.metrics != nil {
		attrs = append(attrs, "metrics", a.metricsLn.Addr().String())
	}
	a.log.Info("veloflux started", attrs...)
	if err := a.writeReady(); err != nil {
		_ = failed("ready file", err)
		stop()
	}
	close(a.serving)

	_ = g.Wait() // every error is in errs, in the order the parts failed
	if a.readyFile != "" {
		_ = os.Remove(a.readyFile) // a stopped node is not ready
	}
	_ = a.pace.Close() // every part that paces has stopped
	a.log.Info("veloflux stopped")
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// reload applies the configuration file again. A file that does not load, validate or build
// is rejected whole and the running configuration stays.
func (a *app) reload(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.certs != nil {
		_ = a.certs.Reload() // a file that does not load keeps its certificate: logged and counted there
	}
	err := a.applyLocked()
	a.lastReload = views.Reload{At: time.Now(), OK: err == nil}
	if err != nil {
		a.lastReload.Error = err.Error()
		a.reloads.WithLabelValues("failure").Inc()
		a.log.Error("configuration rejected; the previous one keeps serving", "reason", reason, "config", a.path, "error", err.Error())
		return
	}
	a.reloads.WithLabelValues("success").Inc()
	a.reloadOKTime.SetToCurrentTime()
	a.log.Info("configuration reloaded", "reason", reason, "config", a.path, "pools", len(a.cfg.Pools), "routes", len(a.cfg.Routes))
}

func (a *app) applyLocked() error {
	cfg, err := config.LoadPaced(a.path, a.environ, a.pace)
	if err != nil {
		return err
	}
	if geoUsed(cfg) && a.geo == nil {
		return errors.New("routes[].geo: geo routing needs geo.database and geo.node_region at start-up; restart to enable it")
	}
	level, err := telemetry.ParseLevel(cfg.Global.LogLevel)
	if err != nil {
		return err
	}
	pc := proxyConfig(cfg)
	if err := a.routing.setStatic(cfg); err != nil {
		return err
	}
	if err := a.proxy.Reconfigure(pc); err != nil {
		return err
	}
	a.checker.SetConfig(cfg.Global.HealthCheck)
	if a.cluster != nil {
		// Not fatal: the rest of the reload applies, and the keys in use stay as they were.
		if changed, err := a.cluster.applyKeys(cfg.Cluster); err != nil {
			a.log.Warn("gossip keys not changed", "error", err.Error())
		} else if changed {
			a.log.Info("gossip keys changed", "keys", 1+len(cfg.Cluster.GossipKeys))
		}
	}
	a.level.Set(level)
	warnWithoutStickySecret(cfg, a.log)
	if changed := a.cfg.RestartNeeded(cfg); len(changed) > 0 {
		a.log.Warn("some changed settings need a restart to take effect", "settings", changed)
	}
	a.cfg = cfg
	return nil
}

// adminPassword reads VF_ADMIN_PASS, or the file VF_ADMIN_PASS_FILE names (Docker and Nomad
// secrets), without its trailing newline.
func adminPassword(environ []string) (string, error) {
	if p := getenv(environ, "VF_ADMIN_PASS"); p != "" {
		return p, nil
	}
	path := getenv(environ, "VF_ADMIN_PASS_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("VF_ADMIN_PASS_FILE: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func getenv(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			v = kv[len(key)+1:]
		}
	}
	return v
}
