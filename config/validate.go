package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
	"github.com/veloflux/veloflux/internal/pace"
)

// Validate checks every rule of docs/configuration.md and returns all violations as Errors,
// or nil. It only looks at values: it does not open certificate files or resolve names, so
// `veloflux validate` gives the same answer on any machine.
func (c *Config) Validate() error { return c.validate(nil) }

// validate is Validate stepping aside with p between pools.
func (c *Config) validate(p *pace.Pacer) error {
	v := &validator{pace: p}
	c.validateGlobal(v)
	c.validateRetry(v)
	c.validateSticky(v)
	c.validateRateLimit(v)
	c.validateDiscovery(v)
	c.validateGeo(v)
	c.validateCluster(v)
	c.validateTracing(v)
	c.validatePools(v)
	c.validateRoutes(v)
	if len(v.Errors) == 0 {
		return nil
	}
	sortErrors(v.Errors)
	return v.Errors
}

// validator collects problems; its checks beyond fielderr's are the config file's own rules.
type validator struct {
	fielderr.Errors
	pace *pace.Pacer
}

// urlPath checks a health check path; it goes into a request line, so whitespace and control
// characters would break the request.
func (v *validator) urlPath(path, p string) {
	switch {
	case p == "":
	case !strings.HasPrefix(p, "/"):
		v.Add(path, "must start with \"/\", got %s", quote(p))
	case strings.IndexFunc(p, isSpaceOrControl) >= 0:
		v.Add(path, "must not contain spaces or control characters, got %s", quote(p))
	}
}

func (c *Config) validateGlobal(v *validator) {
	g := &c.Global
	listeners := []struct{ path, addr string }{
		{"global.bind_address", g.BindAddress},
		{"global.tls_bind_address", g.TLSBindAddress},
		{"global.metrics_address", g.MetricsAddress},
		{"global.admin_address", g.AdminAddress},
	}
	if g.BindAddress == "" {
		v.Add("global.bind_address", "required")
	}
	for i, l := range listeners {
		if l.addr == "" {
			continue
		}
		if msg := hostrule.HostPort(l.addr, 0, false); msg != "" {
			v.Add(l.path, "%s", msg)
			continue
		}
		// Port 0 picks a free port per listener, so only fixed ports can collide.
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue
		}
		for _, prev := range listeners[:i] {
			if prev.addr == l.addr {
				v.Add(l.path, "same address as %s (%s)", prev.path, l.addr)
				break
			}
		}
	}
	v.OneOf("global.log_level", g.LogLevel, "debug", "info", "warn", "error")
	v.Positive("global.drain_timeout", g.DrainTimeout)
	v.AtLeast("global.gc_min_heap", g.GCMinHeap, 0)
	for i, p := range g.TrustedProxies {
		if !p.IsValid() {
			v.Add(fmt.Sprintf("global.trusted_proxies[%d]", i), "invalid prefix")
		}
	}
	c.validateTLS(v)
	v.Errors = append(v.Errors, fielderr.Prefix("global.health_check", g.HealthCheck.Validate())...)
	v.Errors = append(v.Errors, fielderr.Prefix("global.passive", g.Passive.Validate())...)

	t := &g.Timeouts
	v.Positive("global.timeouts.read_header", t.ReadHeader)
	if t.Read < 0 {
		v.Add("global.timeouts.read", "must be >= 0 (0 = no limit), got %s", t.Read)
	}
	v.Positive("global.timeouts.idle", t.Idle)
	v.Positive("global.timeouts.backend_dial", t.BackendDial)
	v.Positive("global.timeouts.backend_response_header", t.BackendResponseHeader)
	v.Positive("global.timeouts.backend_idle", t.BackendIdle)

	l := &g.Limits
	v.AtLeast("global.limits.max_header_bytes", l.MaxHeaderBytes, 1)
	v.AtLeast("global.limits.max_header_count", l.MaxHeaderCount, 1)
	if l.H2MaxConcurrentStreams < 1 || l.H2MaxConcurrentStreams > 10000 {
		v.Add("global.limits.h2_max_concurrent_streams", "must be 1..10000, got %d", l.H2MaxConcurrentStreams)
	}
	if l.H2MaxFrameSize < 16384 || l.H2MaxFrameSize > 1<<24-1 {
		v.Add("global.limits.h2_max_frame_size", "must be 16384..16777215 (RFC 9113 section 4.2), got %d", l.H2MaxFrameSize)
	}
	if l.H2StreamWindow < 65535 || l.H2StreamWindow > 1<<31-1 {
		v.Add("global.limits.h2_stream_window", "must be 65535..2147483647, got %d", l.H2StreamWindow)
	}
	if l.H2ConnWindow < l.H2StreamWindow || l.H2ConnWindow > 1<<31-1 {
		v.Add("global.limits.h2_conn_window", "must be at least h2_stream_window (%d) and at most 2147483647, got %d", l.H2StreamWindow, l.H2ConnWindow)
	}
	v.AtLeast("global.limits.max_requests_per_conn", l.MaxRequestsPerConn, 0)
	v.AtLeast("global.limits.max_client_conns", l.MaxClientConns, 0)
	v.AtLeast("global.limits.max_idle_conns_per_backend", l.MaxIdleConnsPerBackend, 1)
	v.AtLeast("global.limits.max_conns_per_backend", l.MaxConnsPerBackend, 0)
	v.Positive("global.limits.backend_queue_timeout", l.BackendQueueTimeout)
}

func (c *Config) validateTLS(v *validator) {
	g := &c.Global
	t := &g.TLS
	files := t.CertFile != "" || t.KeyFile != "" || len(t.Certificates) > 0
	for i, p := range t.Certificates {
		v.Errors = append(v.Errors, fielderr.Prefix(fielderr.Index("global.tls.certificates", i), p.Validate())...)
	}
	v.AtLeast("global.tls.hsts", t.HSTS, 0)
	if t.RedirectHTTP && g.TLSBindAddress == "" {
		v.Add("global.tls.redirect_http", "needs global.tls_bind_address: there is no https to redirect to")
	}
	if t.CertFile != "" && t.KeyFile == "" {
		v.Add("global.tls.key_file", "required when cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		v.Add("global.tls.cert_file", "required when key_file is set")
	}
	if t.AutoCert && files {
		v.Add("global.tls.auto_cert", "cannot be combined with certificate files; use one source of certificates")
	}
	if t.AutoCert && t.CertDir == "" {
		v.Add("global.tls.cert_dir", "required when auto_cert is true")
	}
	if t.AutoCert {
		c.validateACME(v)
	}
	if t.ACMEEmail != "" {
		if a, err := mail.ParseAddress(t.ACMEEmail); err != nil || a.Address != t.ACMEEmail {
			v.Add("global.tls.acme_email", "invalid email address %s", quote(t.ACMEEmail))
		}
	}
	switch {
	case g.TLSBindAddress != "" && !files && !t.AutoCert:
		v.Add("global.tls_bind_address", "needs certificates: set global.tls.cert_file and key_file (or global.tls.certificates), or global.tls.auto_cert")
	case g.TLSBindAddress == "" && (files || t.AutoCert):
		// Certificates without a listener would silently leave the site on plain HTTP only.
		v.Add("global.tls_bind_address", "required when TLS certificates are configured")
	}
}

// validateACME checks the ACME keys, which matter only with auto_cert.
func (c *Config) validateACME(v *validator) {
	t := &c.Global.TLS
	if u, err := url.Parse(t.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		v.Add("global.tls.acme_directory", "must be an https URL such as %s, got %s", DefaultACMEDirectory, quote(t.ACMEDirectory))
	}
	if len(t.ACMEChallenges) == 0 {
		v.Add("global.tls.acme_challenges", "needs at least one of %s, %s", ACMEChallengeHTTP01, ACMEChallengeTLSALPN01)
	}
	seen := map[string]bool{}
	for i, ch := range t.ACMEChallenges {
		path := fmt.Sprintf("global.tls.acme_challenges[%d]", i)
		v.OneOf(path, ch, ACMEChallengeHTTP01, ACMEChallengeTLSALPN01)
		if seen[ch] {
			v.Add(path, "duplicate challenge %s", quote(ch))
		}
		seen[ch] = true
	}
	if t.Storage != "" {
		v.OneOf("global.tls.storage", t.Storage, ACMEStorageConsul, ACMEStorageFile)
	}
	if c.ACMEStorage() == ACMEStorageConsul {
		if !c.Discovery.Consul.Enabled {
			v.Add("global.tls.storage", "consul needs discovery.consul.enabled: the ACME state lives in that Consul")
		}
		v.Errors = append(v.Errors, fielderr.Prefix("global.tls", t.Config.Validate())...)
	}
	// Only DNS-01 proves control of every name under a wildcard, and VeloFlux solves
	// HTTP-01 and TLS-ALPN-01 only.
	for i, r := range c.Routes {
		if strings.HasPrefix(r.Host, "*.") {
			v.Add(fmt.Sprintf("routes[%d].host", i), "wildcard host %s with global.tls.auto_cert: ACME issues wildcard certificates only over DNS-01, which needs a DNS provider VeloFlux does not have; list the names, or serve this host from certificate files", quote(r.Host))
		}
	}
}

func (c *Config) validateRetry(v *validator) {
	v.Errors = append(v.Errors, fielderr.Prefix("retry", c.Retry.Validate())...)
}

// validateSticky checks the sticky section, whose own rules are proxy.StickyConfig's, and the
// secret's length, which matters only when a pool is sticky.
func (c *Config) validateSticky(v *validator) {
	s := &c.Sticky
	v.Errors = append(v.Errors, fielderr.Prefix("sticky", s.Validate())...)
	sticky := slices.ContainsFunc(c.Pools, func(p Pool) bool { return p.StickySessions })
	// An empty secret is allowed: the proxy generates one. A short one is refused because it
	// would make the session cookie forgeable.
	if sticky && s.Secret != "" && len(s.Secret) < 32 {
		v.Add("sticky.secret", "must be at least 32 bytes when a pool has sticky_sessions, got %d", len(s.Secret))
	}
}

// validateRateLimit checks the rate_limit section, whose rules are ratelimit.Config's.
func (c *Config) validateRateLimit(v *validator) {
	v.Errors = append(v.Errors, fielderr.Prefix("rate_limit", c.RateLimit.Validate())...)
}

// validateDiscovery checks discovery.consul, whose own rules are consul.Config's, and the
// rules that tie it to other sections.
func (c *Config) validateDiscovery(v *validator) {
	cs := &c.Discovery.Consul
	v.Errors = append(v.Errors, fielderr.Prefix("discovery.consul", cs.Validate())...)
	// Consul's check of the registration is the /readyz of the metrics listener; without it
	// Consul would keep a dead node's entry passing as long as its agent lives.
	if cs.Register.Enabled && c.Global.MetricsAddress == "" {
		v.Add("discovery.consul.register.enabled", "requires global.metrics_address: Consul checks the node's /readyz there")
	}
}

// validateGeo checks the geo section, whose own rules are geo.Config's, and the rules that
// tie routes and backends to it.
func (c *Config) validateGeo(v *validator) {
	g := &c.Geo
	errs := fielderr.Prefix("geo", g.Validate())
	// The first route that needs geolocation is named, so the message says why the key is
	// required (instead of geo.Config's own message, for a node_region missing beside a
	// database). An invalid mode is reported at the route alone.
	firstGeo := slices.IndexFunc(c.Routes, func(r Route) bool { return r.Geo == GeoNearest || r.Geo == GeoRedirect })
	if firstGeo >= 0 {
		why := fmt.Sprintf("required when a route has geo other than off (routes[%d] has %s)", firstGeo, quote(c.Routes[firstGeo].Geo))
		if g.Database == "" {
			v.Add("geo.database", "%s", why)
		}
		if g.NodeRegion == "" {
			errs = slices.DeleteFunc(errs, func(fe FieldError) bool { return fe.Path == "geo.node_region" })
			v.Add("geo.node_region", "%s", why)
		}
	}
	v.Errors = append(v.Errors, errs...)
	// Backends name regions of the geo table; without a database no table is used.
	for i, p := range c.Pools {
		for j, b := range p.Backends {
			if b.Region == "" {
				continue
			}
			path := fmt.Sprintf("pools[%d].backends[%d].region", i, j)
			switch {
			case !geo.ValidRegionName(b.Region):
				v.Add(path, "invalid region name %s: use lower-case letters, digits, \".\", \"_\" and \"-\" only", quote(b.Region))
			case g.Database != "" && !g.Known(b.Region):
				v.Add(path, "unknown region %s: not built in (see docs/geo-routing.md) and not in geo.regions", quote(b.Region))
			}
		}
	}
}

// validateCluster checks the cluster section, whose own rules are gossip.Config's and
// consensus.Config's, and the rule that ties it to discovery.
func (c *Config) validateCluster(v *validator) {
	cl := &c.Cluster
	v.Errors = append(v.Errors, fielderr.Prefix("cluster", cl.Config.Validate())...)
	v.Errors = append(v.Errors, fielderr.Prefix("cluster.health", cl.Health.Validate())...)
	if cl.JoinConsul && !c.Discovery.Consul.Register.Enabled {
		v.Add("cluster.join_consul", "requires discovery.consul.register.enabled: true (peers are found through that registration)")
	}
}

// validateTracing checks the tracing section, whose rules are tracing.Config's.
func (c *Config) validateTracing(v *validator) {
	v.Errors = append(v.Errors, fielderr.Prefix("tracing", c.Tracing.Validate())...)
}

func (c *Config) validatePools(v *validator) {
	byName := make(map[string]int, len(c.Pools))
	for i := range c.Pools {
		v.pace.Step()
		p := &c.Pools[i]
		path := fmt.Sprintf("pools[%d]", i)
		switch {
		case p.Name == "":
			v.Add(path+".name", "required")
		case strings.IndexFunc(p.Name, func(r rune) bool { return !isPoolNameChar(r) }) >= 0:
			v.Add(path+".name", "invalid name %s: use letters, digits, \".\", \"_\" and \"-\" only", quote(p.Name))
		}
		if j, dup := byName[p.Name]; dup && p.Name != "" {
			v.Add(path+".name", "duplicate pool name %s, also used by pools[%d]", quote(p.Name), j)
		} else {
			byName[p.Name] = i
		}
		v.OneOf(path+".algorithm", p.Algorithm,
			AlgorithmRoundRobin, AlgorithmWeighted, AlgorithmLeastConn, AlgorithmIPHash, AlgorithmRandom)
		v.OneOf(path+".protocol", p.Protocol, ProtocolHTTP, ProtocolHTTPS, ProtocolH2C)
		if p.TLSSkipVerify && p.Protocol != ProtocolHTTPS {
			v.Add(path+".tls_skip_verify", "only applies to protocol https, got protocol %s", quote(p.Protocol))
		}
		v.poolTLS(path+".tls", p)
		v.AtLeast(path+".max_conns_per_backend", p.MaxConnsPerBackend, 0)
		hc := &p.HealthCheck
		v.Errors = append(v.Errors, fielderr.Prefix(path+".health_check", hc.Validate())...)
		v.urlPath(path+".health_check.path", hc.Path)
		tcp := hc.Type == health.TypeTCP
		if tcp && hc.Path != "" {
			v.Add(path+".health_check.path", "only applies to type http, got type tcp (a tcp check opens a connection and checks every backend)")
		}
		v.Errors = append(v.Errors, fielderr.Prefix(path+".passive", p.Passive.Validate())...)

		byAddr := make(map[string]int, len(p.Backends))
		for j := range p.Backends {
			v.backend(path, j, &p.Backends[j], tcp, byAddr)
		}
	}
}

// backend checks pools[].backends[j]. Its path is only built for a problem: a pool of
// thousands of valid backends costs no string per backend.
func (v *validator) backend(pool string, j int, b *Backend, tcp bool, byAddr map[string]int) {
	bpath := func() string { return pool + ".backends[" + strconv.Itoa(j) + "]" }
	if b.Address == "" {
		v.Add(bpath()+".address", "required")
	} else if msg := hostrule.HostPort(b.Address, 1, true); msg != "" {
		v.Add(bpath()+".address", "%s", msg)
	} else {
		key := strings.ToLower(b.Address)
		if k, dup := byAddr[key]; dup {
			v.Add(bpath()+".address", "duplicate address %s, also used by backends[%d]", quote(b.Address), k)
		} else {
			byAddr[key] = j
		}
	}
	if b.Weight < 1 || b.Weight > 10000 {
		v.Between(bpath()+".weight", b.Weight, 1, 10000)
	}
	bh := b.HealthCheck
	if bh == (BackendHealthCheck{}) {
		return
	}
	v.urlPath(bpath()+".health_check.path", bh.Path)
	if errs := health.ValidateProbe(bh.Method, bh.Host, bh.ExpectStatus); len(errs) > 0 {
		v.Errors = append(v.Errors, fielderr.Prefix(bpath()+".health_check", errs)...)
	}
	if tcp {
		for _, kv := range [][2]string{{"path", bh.Path}, {"method", bh.Method}, {"host", bh.Host}, {"expect_status", bh.ExpectStatus}} {
			if kv[1] != "" {
				v.Add(bpath()+".health_check."+kv[0], "only applies to type http, got the pool's type tcp")
			}
		}
	}
}

// poolTLS checks pools[].tls; its keys do something only over TLS.
func (v *validator) poolTLS(path string, p *Pool) {
	t := p.TLS
	if t.IsZero() {
		return
	}
	if p.Protocol != ProtocolHTTPS {
		v.Add(path, "only applies to protocol https, got protocol %s", quote(p.Protocol))
	}
	if t.CertFile != "" && t.KeyFile == "" {
		v.Add(path+".key_file", "required when cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		v.Add(path+".cert_file", "required when key_file is set")
	}
	if t.ServerName != "" {
		if msg := hostrule.HostOrIP(t.ServerName); msg != "" {
			v.Add(path+".server_name", "%s", msg)
		}
	}
	if t.CAFile != "" || t.ServerName != "" {
		const msg = "cannot be combined with tls.ca_file or tls.server_name, which only matter when certificates are verified"
		if t.InsecureSkipVerify {
			v.Add(path+".insecure_skip_verify", msg)
		}
		if p.TLSSkipVerify {
			v.Add(strings.TrimSuffix(path, ".tls")+".tls_skip_verify", msg)
		}
	}
}

func (c *Config) validateRoutes(v *validator) {
	pools := make(map[string]bool, len(c.Pools))
	for _, p := range c.Pools {
		pools[p.Name] = true
	}
	redirects := slices.ContainsFunc(c.Geo.Regions, func(r geo.Region) bool { return r.RedirectHost != "" })
	type routeKey struct{ host, prefix string }
	seen := make(map[routeKey]int, len(c.Routes))
	for i := range c.Routes {
		r := &c.Routes[i]
		path := fmt.Sprintf("routes[%d]", i)
		hostOK := true
		if msg := routeHost(r.Host); msg != "" {
			v.Add(path+".host", "%s", msg)
			hostOK = false
		}
		switch {
		case r.PathPrefix == "":
		case !strings.HasPrefix(r.PathPrefix, "/"):
			v.Add(path+".path_prefix", "must be empty or start with \"/\", got %s", quote(r.PathPrefix))
		case strings.ContainsAny(r.PathPrefix, "?#"):
			v.Add(path+".path_prefix", "must be a path without query or fragment, got %s", quote(r.PathPrefix))
		case strings.IndexFunc(r.PathPrefix, isSpaceOrControl) >= 0:
			v.Add(path+".path_prefix", "must not contain spaces or control characters, got %s", quote(r.PathPrefix))
		}
		switch {
		case r.Pool == "":
			v.Add(path+".pool", "required")
		case !pools[r.Pool]:
			v.Add(path+".pool", "unknown pool %s", quote(r.Pool))
		}
		v.OneOf(path+".geo", r.Geo, GeoOff, GeoNearest, GeoRedirect)
		if r.Geo == GeoRedirect && !redirects {
			v.Add(path+".geo", "\"redirect\" needs a geo.regions[] entry with a redirect_host to send clients to")
		}
		if !hostOK {
			continue
		}
		// "" and "/" match the same requests, so they count as the same prefix.
		k := routeKey{r.Host, r.PathPrefix}
		if k.prefix == "" {
			k.prefix = "/"
		}
		if j, dup := seen[k]; dup {
			v.Add(path, "same host and path_prefix as routes[%d]; the second route could never match", j)
		} else {
			seen[k] = i
		}
	}
}

func isPoolNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func isSpaceOrControl(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

// routeHost returns why h cannot be routes[].host, or "".
func routeHost(h string) string {
	if h == "*" {
		return "\"*\" is not a host; use \"\" for the default route"
	}
	return hostrule.Route(h)
}
