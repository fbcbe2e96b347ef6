package config

import (
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// Validate checks every rule of docs/configuration.md and returns all violations as Errors,
// or nil. It only looks at values: it does not open certificate files or resolve names, so
// `veloflux validate` gives the same answer on any machine.
func (c *Config) Validate() error {
	v := &validator{}
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
type validator struct{ fielderr.Errors }

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

func (v *validator) healthCheck(path string, hc HealthCheck) {
	v.Positive(path+".interval", hc.Interval)
	v.Positive(path+".timeout", hc.Timeout)
	if hc.Timeout > 0 && hc.Interval > 0 && hc.Timeout > hc.Interval {
		v.Add(path+".timeout", "must not exceed interval (%s), got %s", hc.Interval, hc.Timeout)
	}
	v.AtLeast(path+".retries", hc.Retries, 1)
	v.AtLeast(path+".rise", hc.Rise, 1)
	if hc.Interval > 0 && hc.MaxInterval < hc.Interval {
		v.Add(path+".max_interval", "must be at least interval (%s), got %s", hc.Interval, hc.MaxInterval)
	}
	v.OneOf(path+".type", hc.Type, HealthCheckHTTP, HealthCheckTCP)
	if hc.Method == "" {
		v.Add(path+".method", "must be an HTTP method such as GET or HEAD, got %s", quote(hc.Method))
	}
	if hc.ExpectStatus == "" {
		_, err := statusset.Parse("")
		v.Add(path+".expect_status", "%s", err)
	}
	v.httpCheck(path, hc.Method, hc.Host, hc.ExpectStatus)
}

// httpCheck checks the HTTP probe settings that a pool and a backend can both set; "" is
// always valid here (the caller decides whether a value is required).
func (v *validator) httpCheck(path, method, host, expect string) {
	if method != "" && strings.IndexFunc(method, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		v.Add(path+".method", "must be an HTTP method such as GET or HEAD, got %s", quote(method))
	}
	if host != "" {
		// The Host header takes what a route host takes, less the wildcard.
		msg := hostrule.Route(host)
		if msg == "" && strings.HasPrefix(host, "*.") {
			msg = fmt.Sprintf("invalid host %s: a Host header cannot be a wildcard", quote(host))
		}
		if msg != "" {
			v.Add(path+".host", "%s", msg)
		}
	}
	if expect != "" {
		if _, err := statusset.Parse(expect); err != nil {
			v.Add(path+".expect_status", "%s", err)
		}
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
	for i, p := range g.TrustedProxies {
		if !p.IsValid() {
			v.Add(fmt.Sprintf("global.trusted_proxies[%d]", i), "invalid prefix")
		}
	}
	c.validateTLS(v)
	v.healthCheck("global.health_check", g.HealthCheck)
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
		p := t.StoragePrefix
		switch {
		case p == "":
			v.Add("global.tls.storage_prefix", "required with storage consul")
		case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
			v.Add("global.tls.storage_prefix", "must not start or end with \"/\", got %s", quote(p))
		case strings.IndexFunc(p, isSpaceOrControl) >= 0:
			v.Add("global.tls.storage_prefix", "must not contain spaces or control characters, got %s", quote(p))
		}
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

// Limits of geo values.
const (
	maxGeoCacheSize = 10_000_000
	maxLatitude     = 90
	maxLongitude    = 180
)

// continentCodes are the continent codes of MaxMind databases.
var continentCodes = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// validateGeo checks the geo section and the rules that tie routes to it. Region names are
// checked for spelling only: the geo package knows the built-in names, and cmd resolves every
// name at startup and on reload.
func (c *Config) validateGeo(v *validator) {
	g := &c.Geo
	// The first route that needs geolocation is named, so the message says why the key is
	// required. An invalid mode is reported at the route alone.
	firstGeo := -1
	for i, r := range c.Routes {
		if r.Geo == GeoNearest || r.Geo == GeoRedirect {
			firstGeo = i
			break
		}
	}
	if firstGeo >= 0 {
		why := fmt.Sprintf("required when a route has geo other than off (routes[%d] has %s)", firstGeo, quote(c.Routes[firstGeo].Geo))
		if g.Database == "" {
			v.Add("geo.database", "%s", why)
		}
		if g.NodeRegion == "" {
			v.Add("geo.node_region", "%s", why)
		}
	}
	if g.NodeRegion != "" {
		v.regionName("geo.node_region", g.NodeRegion)
	}
	v.Between("geo.cache_size", g.CacheSize, 1, maxGeoCacheSize)
	if g.ResponseHeader != "" && strings.IndexFunc(g.ResponseHeader, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		v.Add("geo.response_header", "invalid header name %s: use letters, digits and !#$%%&'*+-.^_`|~ only", quote(g.ResponseHeader))
	}

	byName := make(map[string]int, len(g.Regions))
	for i, r := range g.Regions {
		path := fmt.Sprintf("geo.regions[%d]", i)
		if r.Name == "" {
			v.Add(path+".name", "required")
		} else if v.regionName(path+".name", r.Name) {
			if j, dup := byName[r.Name]; dup {
				v.Add(path+".name", "duplicate region name %s, also used by regions[%d]", quote(r.Name), j)
			} else {
				byName[r.Name] = i
			}
		}
		v.coordinate(path+".lat", r.Lat, maxLatitude)
		v.coordinate(path+".lon", r.Lon, maxLongitude)
		if r.RedirectHost != "" {
			if msg := checkRedirectHost(r.RedirectHost); msg != "" {
				v.Add(path+".redirect_host", "%s", msg)
			}
		}
	}

	for _, code := range slices.Sorted(maps.Keys(g.CountryRegions)) {
		path := "geo.country_regions[" + strconv.Quote(code) + "]"
		if !isCountryCode(code) {
			v.Add(path, "country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. \"DE\"), got %s", quote(code))
		}
		v.mappedRegion(path, g.CountryRegions[code])
	}
	for _, code := range slices.Sorted(maps.Keys(g.ContinentRegions)) {
		path := "geo.continent_regions[" + strconv.Quote(code) + "]"
		if !slices.Contains(continentCodes, code) {
			v.Add(path, "continent code must be one of %s, got %s", strings.Join(continentCodes, ", "), quote(code))
		}
		v.mappedRegion(path, g.ContinentRegions[code])
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

// regionName checks the spelling of a region name and reports whether it is valid.
func (v *validator) regionName(path, name string) bool {
	if strings.IndexFunc(name, func(r rune) bool { return !isRegionNameChar(r) }) >= 0 {
		v.Add(path, "invalid region name %s: use lower-case letters, digits, \".\", \"_\" and \"-\" only", quote(name))
		return false
	}
	return true
}

// mappedRegion checks the region a country or continent is sent to.
func (v *validator) mappedRegion(path, name string) {
	if name == "" {
		v.Add(path, "must name a region")
		return
	}
	v.regionName(path, name)
}

// coordinate checks a latitude or longitude; NaN and infinities can come from YAML (.nan, .inf).
func (v *validator) coordinate(path string, deg, limit float64) {
	if !(deg >= -limit && deg <= limit) {
		v.Add(path, "must be between %g and %g degrees, got %g", -limit, limit, deg)
	}
}

// validateTracing checks the tracing section, whose rules are tracing.Config's.
func (c *Config) validateTracing(v *validator) {
	v.Errors = append(v.Errors, fielderr.Prefix("tracing", c.Tracing.Validate())...)
}

func (c *Config) validatePools(v *validator) {
	byName := make(map[string]int, len(c.Pools))
	for i := range c.Pools {
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
		v.healthCheck(path+".health_check", hc.Common())
		v.urlPath(path+".health_check.path", hc.Path)
		tcp := hc.Type == HealthCheckTCP
		if tcp && hc.Path != "" {
			v.Add(path+".health_check.path", "only applies to type http, got type tcp (a tcp check opens a connection and checks every backend)")
		}
		v.Errors = append(v.Errors, fielderr.Prefix(path+".passive", p.Passive.Validate())...)

		byAddr := make(map[string]int, len(p.Backends))
		for j := range p.Backends {
			b := &p.Backends[j]
			bpath := fmt.Sprintf("%s.backends[%d]", path, j)
			if b.Address == "" {
				v.Add(bpath+".address", "required")
			} else if msg := hostrule.HostPort(b.Address, 1, true); msg != "" {
				v.Add(bpath+".address", "%s", msg)
			} else if k, dup := byAddr[strings.ToLower(b.Address)]; dup {
				v.Add(bpath+".address", "duplicate address %s, also used by backends[%d]", quote(b.Address), k)
			} else {
				byAddr[strings.ToLower(b.Address)] = j
			}
			v.Between(bpath+".weight", b.Weight, 1, 10000)
			bh := b.HealthCheck
			v.urlPath(bpath+".health_check.path", bh.Path)
			v.httpCheck(bpath+".health_check", bh.Method, bh.Host, bh.ExpectStatus)
			if tcp {
				for _, kv := range [][2]string{{"path", bh.Path}, {"method", bh.Method}, {"host", bh.Host}, {"expect_status", bh.ExpectStatus}} {
					if kv[1] != "" {
						v.Add(bpath+".health_check."+kv[0], "only applies to type http, got the pool's type tcp")
					}
				}
			}
			if b.Region != "" {
				v.regionName(bpath+".region", b.Region)
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
	redirects := slices.ContainsFunc(c.Geo.Regions, func(r GeoRegion) bool { return r.RedirectHost != "" })
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

// checkRedirectHost returns why h cannot be the host of a redirect Location, or "": a host
// name, an IPv4 address or a bracketed IPv6 address, with an optional port.
func checkRedirectHost(h string) string {
	if strings.Contains(h, "://") {
		return fmt.Sprintf("must be host[:port] without a scheme, got %s", quote(h))
	}
	if strings.ContainsAny(h, "/?#") {
		return fmt.Sprintf("must be host[:port] without a path, got %s", quote(h))
	}
	host := h
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		hp, port, err := net.SplitHostPort(h)
		switch {
		case err == nil:
			if msg := hostrule.Port(port, 1); msg != "" {
				return msg
			}
			host = hp
		case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
			host = h[1 : len(h)-1]
		default:
			return fmt.Sprintf("invalid host %s", quote(h))
		}
		if strings.HasPrefix(h, "[") {
			if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
				return fmt.Sprintf("%s in brackets is not an IPv6 address", quote(host))
			}
			return ""
		}
	} else if strings.Contains(h, ":") {
		return fmt.Sprintf("IPv6 addresses must be in brackets, e.g. \"[2001:db8::1]\", got %s", quote(h))
	}
	if host == "" {
		return "missing host"
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return ""
	}
	if msg := hostrule.Name(host); msg != "" {
		return fmt.Sprintf("invalid host %s: %s", quote(host), msg)
	}
	return ""
}

// isRegionNameChar reports whether r may appear in a region name: [a-z0-9._-]. Lower-case
// only, because names are compared exactly and also appear in response headers and metrics.
func isRegionNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// isCountryCode reports whether s has the form of an ISO 3166-1 alpha-2 code, as GeoIP
// databases report them: two upper-case ASCII letters.
func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

func isPoolNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// isTokenChar reports whether r may appear in an RFC 6265 cookie name (an RFC 2616 token).
func isTokenChar(r rune) bool {
	return r > ' ' && r < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
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
