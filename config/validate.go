package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/hostrule"
	"github.com/veloflux/veloflux/telemetry/tracing"
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
	if len(v.errs) == 0 {
		return nil
	}
	sortErrors(v.errs)
	return v.errs
}

type validator struct{ errs Errors }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.add(path, "must be > 0, got %s", d)
	}
}

func (v *validator) between(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(path, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) atLeast(path string, n, lo int) {
	if n < lo {
		v.add(path, "must be >= %d, got %d", lo, n)
	}
}

// rate checks a requests-per-second value; NaN and infinities can come from YAML (.nan, .inf).
func (v *validator) rate(path string, r float64) {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		v.add(path, "must be a finite number, got %g", r)
	case r < 0:
		v.add(path, "must be >= 0, got %g", r)
	}
}

func (v *validator) oneOf(path, got string, valid ...string) {
	for _, s := range valid {
		if got == s {
			return
		}
	}
	v.add(path, "must be one of %s; got %s", strings.Join(valid, ", "), quote(got))
}

// urlPath checks a health check path; it goes into a request line, so whitespace and control
// characters would break the request.
func (v *validator) urlPath(path, p string) {
	switch {
	case p == "":
	case !strings.HasPrefix(p, "/"):
		v.add(path, "must start with \"/\", got %s", quote(p))
	case strings.IndexFunc(p, isSpaceOrControl) >= 0:
		v.add(path, "must not contain spaces or control characters, got %s", quote(p))
	}
}

func (v *validator) healthCheck(path string, hc HealthCheck) {
	v.positive(path+".interval", hc.Interval)
	v.positive(path+".timeout", hc.Timeout)
	if hc.Timeout > 0 && hc.Interval > 0 && hc.Timeout > hc.Interval {
		v.add(path+".timeout", "must not exceed interval (%s), got %s", hc.Interval, hc.Timeout)
	}
	v.atLeast(path+".retries", hc.Retries, 1)
	v.atLeast(path+".rise", hc.Rise, 1)
	if hc.Interval > 0 && hc.MaxInterval < hc.Interval {
		v.add(path+".max_interval", "must be at least interval (%s), got %s", hc.Interval, hc.MaxInterval)
	}
	v.oneOf(path+".type", hc.Type, HealthCheckHTTP, HealthCheckTCP)
	if hc.Method == "" {
		v.add(path+".method", "must be an HTTP method such as GET or HEAD, got %s", quote(hc.Method))
	}
	if hc.ExpectStatus == "" {
		_, err := statusset.Parse("")
		v.add(path+".expect_status", "%s", err)
	}
	v.httpCheck(path, hc.Method, hc.Host, hc.ExpectStatus)
}

// httpCheck checks the HTTP probe settings that a pool and a backend can both set; "" is
// always valid here (the caller decides whether a value is required).
func (v *validator) httpCheck(path, method, host, expect string) {
	if method != "" && strings.IndexFunc(method, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		v.add(path+".method", "must be an HTTP method such as GET or HEAD, got %s", quote(method))
	}
	if host != "" {
		// The Host header takes what a route host takes, less the wildcard.
		msg := hostrule.Route(host)
		if msg == "" && strings.HasPrefix(host, "*.") {
			msg = fmt.Sprintf("invalid host %s: a Host header cannot be a wildcard", quote(host))
		}
		if msg != "" {
			v.add(path+".host", "%s", msg)
		}
	}
	if expect != "" {
		if _, err := statusset.Parse(expect); err != nil {
			v.add(path+".expect_status", "%s", err)
		}
	}
}

func (v *validator) passive(path string, p Passive) {
	v.atLeast(path+".consecutive_failures", p.ConsecutiveFailures, 0)
	v.positive(path+".ejection_time", p.EjectionTime)
	if p.EjectionTime > 0 && p.MaxEjectionTime < p.EjectionTime {
		v.add(path+".max_ejection_time", "must be at least ejection_time (%s), got %s", p.EjectionTime, p.MaxEjectionTime)
	}
	v.between(path+".max_ejection_percent", p.MaxEjectionPercent, 0, 100)
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
		v.add("global.bind_address", "required")
	}
	for i, l := range listeners {
		if l.addr == "" {
			continue
		}
		if msg := checkHostPort(l.addr, 0, false); msg != "" {
			v.add(l.path, "%s", msg)
			continue
		}
		// Port 0 picks a free port per listener, so only fixed ports can collide.
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue
		}
		for _, prev := range listeners[:i] {
			if prev.addr == l.addr {
				v.add(l.path, "same address as %s (%s)", prev.path, l.addr)
				break
			}
		}
	}
	v.oneOf("global.log_level", g.LogLevel, "debug", "info", "warn", "error")
	v.positive("global.drain_timeout", g.DrainTimeout)
	for i, p := range g.TrustedProxies {
		if !p.IsValid() {
			v.add(fmt.Sprintf("global.trusted_proxies[%d]", i), "invalid prefix")
		}
	}
	c.validateTLS(v)
	v.healthCheck("global.health_check", g.HealthCheck)
	v.passive("global.passive", g.Passive)

	t := &g.Timeouts
	v.positive("global.timeouts.read_header", t.ReadHeader)
	if t.Read < 0 {
		v.add("global.timeouts.read", "must be >= 0 (0 = no limit), got %s", t.Read)
	}
	v.positive("global.timeouts.idle", t.Idle)
	v.positive("global.timeouts.backend_dial", t.BackendDial)
	v.positive("global.timeouts.backend_response_header", t.BackendResponseHeader)
	v.positive("global.timeouts.backend_idle", t.BackendIdle)

	l := &g.Limits
	v.atLeast("global.limits.max_header_bytes", l.MaxHeaderBytes, 1)
	v.atLeast("global.limits.max_header_count", l.MaxHeaderCount, 1)
	if l.H2MaxConcurrentStreams < 1 || l.H2MaxConcurrentStreams > 10000 {
		v.add("global.limits.h2_max_concurrent_streams", "must be 1..10000, got %d", l.H2MaxConcurrentStreams)
	}
	if l.H2MaxFrameSize < 16384 || l.H2MaxFrameSize > 1<<24-1 {
		v.add("global.limits.h2_max_frame_size", "must be 16384..16777215 (RFC 9113 section 4.2), got %d", l.H2MaxFrameSize)
	}
	if l.H2StreamWindow < 65535 || l.H2StreamWindow > 1<<31-1 {
		v.add("global.limits.h2_stream_window", "must be 65535..2147483647, got %d", l.H2StreamWindow)
	}
	if l.H2ConnWindow < l.H2StreamWindow || l.H2ConnWindow > 1<<31-1 {
		v.add("global.limits.h2_conn_window", "must be at least h2_stream_window (%d) and at most 2147483647, got %d", l.H2StreamWindow, l.H2ConnWindow)
	}
	v.atLeast("global.limits.max_requests_per_conn", l.MaxRequestsPerConn, 0)
	v.atLeast("global.limits.max_client_conns", l.MaxClientConns, 0)
	v.atLeast("global.limits.max_idle_conns_per_backend", l.MaxIdleConnsPerBackend, 1)
	v.atLeast("global.limits.max_conns_per_backend", l.MaxConnsPerBackend, 0)
	v.positive("global.limits.backend_queue_timeout", l.BackendQueueTimeout)
}

func (c *Config) validateTLS(v *validator) {
	g := &c.Global
	t := &g.TLS
	files := t.CertFile != "" || t.KeyFile != "" || len(t.Certificates) > 0
	for i, p := range t.Certificates {
		path := fmt.Sprintf("global.tls.certificates[%d]", i)
		if p.CertFile == "" {
			v.add(path+".cert_file", "required")
		}
		if p.KeyFile == "" {
			v.add(path+".key_file", "required")
		}
	}
	v.atLeast("global.tls.hsts", t.HSTS, 0)
	if t.RedirectHTTP && g.TLSBindAddress == "" {
		v.add("global.tls.redirect_http", "needs global.tls_bind_address: there is no https to redirect to")
	}
	if t.CertFile != "" && t.KeyFile == "" {
		v.add("global.tls.key_file", "required when cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		v.add("global.tls.cert_file", "required when key_file is set")
	}
	if t.AutoCert && files {
		v.add("global.tls.auto_cert", "cannot be combined with certificate files; use one source of certificates")
	}
	if t.AutoCert && t.CertDir == "" {
		v.add("global.tls.cert_dir", "required when auto_cert is true")
	}
	if t.ACMEEmail != "" {
		if a, err := mail.ParseAddress(t.ACMEEmail); err != nil || a.Address != t.ACMEEmail {
			v.add("global.tls.acme_email", "invalid email address %s", quote(t.ACMEEmail))
		}
	}
	switch {
	case g.TLSBindAddress != "" && !files && !t.AutoCert:
		v.add("global.tls_bind_address", "needs certificates: set global.tls.cert_file and key_file (or global.tls.certificates), or global.tls.auto_cert")
	case g.TLSBindAddress == "" && (files || t.AutoCert):
		// Certificates without a listener would silently leave the site on plain HTTP only.
		v.add("global.tls_bind_address", "required when TLS certificates are configured")
	}
}

func (c *Config) validateRetry(v *validator) {
	v.between("retry.attempts", c.Retry.Attempts, 1, 10)
	v.positive("retry.timeout", c.Retry.Timeout)
}

func (c *Config) validateSticky(v *validator) {
	s := &c.Sticky
	switch {
	case s.CookieName == "":
		v.add("sticky.cookie_name", "required")
	case strings.IndexFunc(s.CookieName, func(r rune) bool { return !isTokenChar(r) }) >= 0:
		v.add("sticky.cookie_name", "invalid cookie name %s: use letters, digits and !#$%%&'*+-.^_`|~ only", quote(s.CookieName))
	}
	v.positive("sticky.ttl", s.TTL)
	v.oneOf("sticky.same_site", s.SameSite, "lax", "strict", "none")
	if s.SameSite == "none" && !s.Secure {
		v.add("sticky.same_site", "\"none\" requires sticky.secure: true (browsers drop SameSite=None cookies that are not Secure)")
	}
	sticky := false
	for _, p := range c.Pools {
		sticky = sticky || p.StickySessions
	}
	// An empty secret is allowed: cmd generates one. A short one is refused because it
	// would make the session cookie forgeable.
	if sticky && s.Secret != "" && len(s.Secret) < 32 {
		v.add("sticky.secret", "must be at least 32 bytes when a pool has sticky_sessions, got %d", len(s.Secret))
	}
}

func (c *Config) validateRateLimit(v *validator) {
	r := &c.RateLimit
	v.rate("rate_limit.requests_per_second", r.RequestsPerSecond)
	v.atLeast("rate_limit.burst", r.Burst, 0)
	v.atLeast("rate_limit.max_clients", r.MaxClients, 1)
	v.between("rate_limit.ipv6_prefix", r.IPv6Prefix, 1, 128)
	for i, rule := range r.Rules {
		path := fmt.Sprintf("rate_limit.rules[%d]", i)
		if !rule.CIDR.IsValid() {
			v.add(path+".cidr", "required")
		} else {
			// First match wins, so a rule inside an earlier rule's range can never apply.
			for j, prev := range r.Rules[:i] {
				if prev.CIDR.IsValid() && prev.CIDR.Bits() <= rule.CIDR.Bits() && prev.CIDR.Contains(rule.CIDR.Addr()) {
					v.add(path+".cidr", "never matches: rules[%d] (%s) comes first and covers %s", j, prev.CIDR, rule.CIDR)
					break
				}
			}
		}
		v.rate(path+".requests_per_second", rule.RequestsPerSecond)
		if !rule.Exempt && rule.RequestsPerSecond == 0 {
			v.add(path+".requests_per_second", "must be > 0 unless exempt is true")
		}
		v.atLeast(path+".burst", rule.Burst, 0)
	}
}

// Limits of discovery.consul durations.
const (
	// consulMaxWait is Consul's default max_query_time: a longer wait is cut to it anyway.
	consulMaxWait = 10 * time.Minute
	minConsulWait = time.Second
	// maxCoalesce keeps a backend change from waiting noticeably long before it is routed.
	maxCoalesce = 10 * time.Second
	// minDeregisterAfter is Consul's floor for deregister_critical_service_after.
	minDeregisterAfter = time.Minute
)

// validateDiscovery checks discovery.consul whether or not it is enabled, so that turning it on
// later never reveals an old mistake.
func (c *Config) validateDiscovery(v *validator) {
	const path = "discovery.consul"
	cs := &c.Discovery.Consul
	switch {
	case cs.Address == "":
		v.add(path+".address", "required")
	case strings.Contains(cs.Address, "://"):
		v.add(path+".address", "must be host:port without a scheme, got %s; set discovery.consul.scheme instead", quote(cs.Address))
	default:
		if msg := checkHostPort(cs.Address, 1, true); msg != "" {
			v.add(path+".address", "%s", msg)
		}
	}
	v.oneOf(path+".scheme", cs.Scheme, "http", "https")
	// The token goes into a request header; it is never echoed because it is a secret.
	if strings.IndexFunc(cs.Token, isSpaceOrControl) >= 0 {
		v.add(path+".token", "must not contain spaces or control characters (value not shown: it is secret)")
	}
	if cs.Token != "" && cs.TokenFile != "" {
		v.add(path+".token_file", "set either token or token_file, not both")
	}
	if cs.Datacenter != "" && !isDatacenterName(cs.Datacenter) {
		v.add(path+".datacenter", "invalid datacenter %s: Consul datacenter names are lower-case letters, digits, \"-\" and \"_\"", quote(cs.Datacenter))
	}
	seenDC := make(map[string]int, len(cs.Datacenters))
	for i, dc := range cs.Datacenters {
		dcPath := fmt.Sprintf("%s.datacenters[%d]", path, i)
		switch j, dup := seenDC[dc]; {
		case dc == "":
			v.add(dcPath, "must not be empty")
		case !isDatacenterName(dc):
			v.add(dcPath, "invalid datacenter %s: Consul datacenter names are lower-case letters, digits, \"-\" and \"_\"", quote(dc))
		case dc == cs.Datacenter:
			v.add(dcPath, "%s is discovery.consul.datacenter; list only other datacenters", quote(dc))
		case dup:
			v.add(dcPath, "duplicate datacenter %s, also datacenters[%d]", quote(dc), j)
		default:
			seenDC[dc] = i
		}
	}

	t := &cs.TLS
	if t.CertFile != "" && t.KeyFile == "" {
		v.add(path+".tls.key_file", "required when cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		v.add(path+".tls.cert_file", "required when key_file is set")
	}
	if t.ServerName != "" {
		if msg := checkHostOrIP(t.ServerName); msg != "" {
			v.add(path+".tls.server_name", "%s", msg)
		}
	}

	switch {
	case cs.TagPrefix == "":
		v.add(path+".tag_prefix", "required")
	case strings.IndexFunc(cs.TagPrefix, func(r rune) bool { return !isWordChar(r) }) >= 0:
		v.add(path+".tag_prefix", "invalid tag prefix %s: use letters, digits, \"_\" and \"-\" only", quote(cs.TagPrefix))
	}
	if cs.WaitTime < minConsulWait || cs.WaitTime > consulMaxWait {
		v.add(path+".wait_time", "must be between 1s and 10m (Consul cuts longer waits to 10m), got %s", cs.WaitTime)
	}
	if cs.Coalesce < 0 || cs.Coalesce > maxCoalesce {
		v.add(path+".coalesce", "must be between 0 and 10s, got %s", cs.Coalesce)
	}
	v.positive(path+".min_backoff", cs.MinBackoff)
	if cs.MinBackoff > 0 && cs.MaxBackoff < cs.MinBackoff {
		v.add(path+".max_backoff", "must be >= min_backoff (%s), got %s", cs.MinBackoff, cs.MaxBackoff)
	}

	r := &cs.Register
	rpath := path + ".register"
	if r.Enabled && !cs.Enabled {
		v.add(rpath+".enabled", "requires discovery.consul.enabled: true")
	}
	// Consul's check of the registration is the /readyz of the metrics listener; without it
	// Consul would keep a dead node's entry passing as long as its agent lives.
	if r.Enabled && c.Global.MetricsAddress == "" {
		v.add(rpath+".enabled", "requires global.metrics_address: Consul checks the node's /readyz there")
	}
	switch {
	case r.Name == "":
		v.add(rpath+".name", "required")
	case strings.IndexFunc(r.Name, func(ch rune) bool { return !isWordChar(ch) || ch == '_' }) >= 0:
		v.add(rpath+".name", "invalid service name %s: use letters, digits and \"-\" only (Consul DNS needs a DNS label)", quote(r.Name))
	}
	if strings.ContainsRune(r.ID, '/') || strings.IndexFunc(r.ID, isSpaceOrControl) >= 0 {
		v.add(rpath+".id", "must not contain \"/\", spaces or control characters, got %s", quote(r.ID))
	}
	if r.Address != "" {
		if msg := checkHostOrIP(r.Address); msg != "" {
			v.add(rpath+".address", "%s", msg)
		} else if a, err := netip.ParseAddr(r.Address); err == nil && a.IsUnspecified() {
			// The agent refuses it, and no client could dial it.
			v.add(rpath+".address", "%s is not an address clients can reach; advertise one of the node's addresses", r.Address)
		}
	}
	for i, tag := range r.Tags {
		switch {
		case tag == "":
			v.add(fmt.Sprintf("%s.tags[%d]", rpath, i), "must not be empty")
		case strings.IndexFunc(tag, unicode.IsControl) >= 0:
			v.add(fmt.Sprintf("%s.tags[%d]", rpath, i), "must not contain control characters, got %s", quote(tag))
		}
	}
	v.positive(rpath+".check_interval", r.CheckInterval)
	if r.DeregisterCriticalAfter < minDeregisterAfter {
		v.add(rpath+".deregister_critical_after", "must be at least 1m (Consul raises shorter values to 1m), got %s", r.DeregisterCriticalAfter)
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
			v.add("geo.database", "%s", why)
		}
		if g.NodeRegion == "" {
			v.add("geo.node_region", "%s", why)
		}
	}
	if g.NodeRegion != "" {
		v.regionName("geo.node_region", g.NodeRegion)
	}
	v.between("geo.cache_size", g.CacheSize, 1, maxGeoCacheSize)
	if g.ResponseHeader != "" && strings.IndexFunc(g.ResponseHeader, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
		v.add("geo.response_header", "invalid header name %s: use letters, digits and !#$%%&'*+-.^_`|~ only", quote(g.ResponseHeader))
	}

	byName := make(map[string]int, len(g.Regions))
	for i, r := range g.Regions {
		path := fmt.Sprintf("geo.regions[%d]", i)
		if r.Name == "" {
			v.add(path+".name", "required")
		} else if v.regionName(path+".name", r.Name) {
			if j, dup := byName[r.Name]; dup {
				v.add(path+".name", "duplicate region name %s, also used by regions[%d]", quote(r.Name), j)
			} else {
				byName[r.Name] = i
			}
		}
		v.coordinate(path+".lat", r.Lat, maxLatitude)
		v.coordinate(path+".lon", r.Lon, maxLongitude)
		if r.RedirectHost != "" {
			if msg := checkRedirectHost(r.RedirectHost); msg != "" {
				v.add(path+".redirect_host", "%s", msg)
			}
		}
	}

	for _, code := range slices.Sorted(maps.Keys(g.CountryRegions)) {
		path := "geo.country_regions[" + strconv.Quote(code) + "]"
		if !isCountryCode(code) {
			v.add(path, "country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. \"DE\"), got %s", quote(code))
		}
		v.mappedRegion(path, g.CountryRegions[code])
	}
	for _, code := range slices.Sorted(maps.Keys(g.ContinentRegions)) {
		path := "geo.continent_regions[" + strconv.Quote(code) + "]"
		if !slices.Contains(continentCodes, code) {
			v.add(path, "continent code must be one of %s, got %s", strings.Join(continentCodes, ", "), quote(code))
		}
		v.mappedRegion(path, g.ContinentRegions[code])
	}
}

// Limits of cluster values. They keep a typo from reserving gigabytes; push_pull_max_bytes
// also stays well below the 20 MiB state that memberlist refuses from a peer, so that outgrowing
// it is a clear local error rather than a silent rejection on the other node.
const (
	maxClusterQueueSize  = 1_000_000
	minPushPullBytes     = 1 << 10
	maxPushPullBytes     = 16 << 20
	maxEntriesPerKind    = 10_000_000
	maxClusterLabelBytes = 64
)

// validateCluster checks the cluster section whether or not it is enabled, so that turning it
// on later never reveals an old mistake. The key is checked as gossip.ParseKey would, without
// importing gossip, and is never quoted because it is a secret.
func (c *Config) validateCluster(v *validator) {
	const path = "cluster"
	cl := &c.Cluster
	if strings.IndexFunc(cl.Name, isSpaceOrControl) >= 0 {
		v.add(path+".name", "must not contain spaces or control characters, got %s", quote(cl.Name))
	}
	var bindIP netip.Addr
	switch {
	case cl.BindAddress == "":
		if cl.Enabled {
			v.add(path+".bind_address", "required when cluster.enabled is true")
		}
	default:
		ip, msg := checkGossipAddr(cl.BindAddress, 0)
		if msg != "" {
			v.add(path+".bind_address", "%s", msg)
		}
		bindIP = ip
	}
	if cl.AdvertiseAddress != "" {
		ip, msg := checkGossipAddr(cl.AdvertiseAddress, 1)
		switch {
		case msg != "":
			v.add(path+".advertise_address", "%s", msg)
		case ip.IsUnspecified():
			v.add(path+".advertise_address", "%s is not an address peers can reach; advertise one of the node's addresses", ip)
		}
	}
	v.oneOf(path+".preset", cl.Preset, ClusterPresetLAN, ClusterPresetWAN)
	if cl.GossipKey != "" {
		if msg := checkGossipKey(cl.GossipKey); msg != "" {
			v.add(path+".gossip_key", "%s (value not shown: it is secret)", msg)
		}
	}
	// Clear-text gossip on a reachable address lets anyone who can send a packet write
	// sessions and backend health, so it must be asked for by name.
	for i, k := range cl.GossipKeys {
		if msg := checkGossipKey(k); msg != "" {
			v.add(fmt.Sprintf("%s.gossip_keys[%d]", path, i), "%s (value not shown: it is secret)", msg)
		}
	}
	if len(cl.GossipKeys) > 0 && cl.GossipKey == "" {
		v.add(path+".gossip_keys", "needs cluster.gossip_key: a node encrypts with gossip_key and only also accepts gossip_keys")
	}
	if bindIP.IsValid() && !bindIP.IsLoopback() && cl.GossipKey == "" && !cl.AllowInsecure {
		v.add(path+".bind_address", "%s is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port", bindIP)
	}
	switch {
	case cl.Label == "":
		v.add(path+".label", "required")
	case strings.IndexFunc(cl.Label, func(r rune) bool { return !isPoolNameChar(r) }) >= 0:
		v.add(path+".label", "invalid label %s: use letters, digits, \".\", \"_\" and \"-\" only", quote(cl.Label))
	case len(cl.Label) > maxClusterLabelBytes:
		v.add(path+".label", "must be at most %d characters, got %d", maxClusterLabelBytes, len(cl.Label))
	}
	for i, seed := range cl.Seeds {
		if msg := checkHostPort(seed, 1, true); msg != "" {
			v.add(fmt.Sprintf("%s.seeds[%d]", path, i), "%s", msg)
		}
	}
	if cl.JoinConsul && !c.Discovery.Consul.Register.Enabled {
		v.add(path+".join_consul", "requires discovery.consul.register.enabled: true (peers are found through that registration)")
	}
	v.between(path+".queue_size", cl.QueueSize, 1, maxClusterQueueSize)
	v.between(path+".push_pull_max_bytes", cl.PushPullMaxBytes, minPushPullBytes, maxPushPullBytes)
	v.between(path+".max_entries_per_kind", cl.MaxEntriesPerKind, 1, maxEntriesPerKind)
	v.positive(path+".tombstone_ttl", cl.TombstoneTTL)
	v.positive(path+".reconnect_interval", cl.ReconnectInterval)
	v.positive(path+".reconnect_timeout", cl.ReconnectTimeout)
	v.between(path+".health.probers", cl.Health.Probers, 1, 16)
	if cl.Health.ObservationTTL < 0 {
		v.add(path+".health.observation_ttl", "%s must not be negative (0 picks it from the interval)", cl.Health.ObservationTTL)
	}
}

// checkGossipAddr returns the IP of a gossip address, or why addr is not ip:port. The host must
// be an IP address without a zone, because memberlist binds and advertises addresses, not names.
func checkGossipAddr(addr string, minPort int) (netip.Addr, string) {
	if msg := checkHostPort(addr, minPort, true); msg != "" {
		return netip.Addr{}, msg
	}
	host, _, _ := net.SplitHostPort(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Sprintf("host must be an IP address (gossip binds and advertises addresses, not names), got %s", quote(host))
	}
	return ip.Unmap(), ""
}

// checkGossipKey returns why s is not one base64 AES key of 16, 24 or 32 bytes, or "". It
// accepts what gossip.ParseKey accepts, surrounding spaces included, and never repeats s.
func checkGossipKey(s string) string {
	if strings.Contains(s, ",") {
		return "must be a single key; a comma-separated list of keys is not supported"
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "is not standard base64"
	}
	switch len(key) {
	case 16, 24, 32:
		return ""
	}
	return fmt.Sprintf("decodes to %d bytes; an AES key is 16, 24 or 32 bytes", len(key))
}

// regionName checks the spelling of a region name and reports whether it is valid.
func (v *validator) regionName(path, name string) bool {
	if strings.IndexFunc(name, func(r rune) bool { return !isRegionNameChar(r) }) >= 0 {
		v.add(path, "invalid region name %s: use lower-case letters, digits, \".\", \"_\" and \"-\" only", quote(name))
		return false
	}
	return true
}

// mappedRegion checks the region a country or continent is sent to.
func (v *validator) mappedRegion(path, name string) {
	if name == "" {
		v.add(path, "must name a region")
		return
	}
	v.regionName(path, name)
}

// coordinate checks a latitude or longitude; NaN and infinities can come from YAML (.nan, .inf).
func (v *validator) coordinate(path string, deg, limit float64) {
	if !(deg >= -limit && deg <= limit) {
		v.add(path, "must be between %g and %g degrees, got %g", -limit, limit, deg)
	}
}

// validateTracing places the tracing section's own problems under its key.
func (c *Config) validateTracing(v *validator) {
	err := c.Tracing.Validate()
	if err == nil {
		return
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce tracing.ConfigError
		if errors.As(e, &ce) {
			v.add("tracing."+ce.Key, "%s", ce.Msg)
		} else {
			v.add("tracing", "%s", e)
		}
	}
}

func (c *Config) validatePools(v *validator) {
	byName := make(map[string]int, len(c.Pools))
	for i := range c.Pools {
		p := &c.Pools[i]
		path := fmt.Sprintf("pools[%d]", i)
		switch {
		case p.Name == "":
			v.add(path+".name", "required")
		case strings.IndexFunc(p.Name, func(r rune) bool { return !isPoolNameChar(r) }) >= 0:
			v.add(path+".name", "invalid name %s: use letters, digits, \".\", \"_\" and \"-\" only", quote(p.Name))
		}
		if j, dup := byName[p.Name]; dup && p.Name != "" {
			v.add(path+".name", "duplicate pool name %s, also used by pools[%d]", quote(p.Name), j)
		} else {
			byName[p.Name] = i
		}
		v.oneOf(path+".algorithm", p.Algorithm,
			AlgorithmRoundRobin, AlgorithmWeighted, AlgorithmLeastConn, AlgorithmIPHash, AlgorithmRandom)
		v.oneOf(path+".protocol", p.Protocol, ProtocolHTTP, ProtocolHTTPS, ProtocolH2C)
		if p.TLSSkipVerify && p.Protocol != ProtocolHTTPS {
			v.add(path+".tls_skip_verify", "only applies to protocol https, got protocol %s", quote(p.Protocol))
		}
		v.atLeast(path+".max_conns_per_backend", p.MaxConnsPerBackend, 0)
		hc := &p.HealthCheck
		v.healthCheck(path+".health_check", hc.Common())
		v.urlPath(path+".health_check.path", hc.Path)
		tcp := hc.Type == HealthCheckTCP
		if tcp && hc.Path != "" {
			v.add(path+".health_check.path", "only applies to type http, got type tcp (a tcp check opens a connection and checks every backend)")
		}
		v.passive(path+".passive", p.Passive)

		byAddr := make(map[string]int, len(p.Backends))
		for j := range p.Backends {
			b := &p.Backends[j]
			bpath := fmt.Sprintf("%s.backends[%d]", path, j)
			if b.Address == "" {
				v.add(bpath+".address", "required")
			} else if msg := checkHostPort(b.Address, 1, true); msg != "" {
				v.add(bpath+".address", "%s", msg)
			} else if k, dup := byAddr[strings.ToLower(b.Address)]; dup {
				v.add(bpath+".address", "duplicate address %s, also used by backends[%d]", quote(b.Address), k)
			} else {
				byAddr[strings.ToLower(b.Address)] = j
			}
			v.between(bpath+".weight", b.Weight, 1, 10000)
			bh := b.HealthCheck
			v.urlPath(bpath+".health_check.path", bh.Path)
			v.httpCheck(bpath+".health_check", bh.Method, bh.Host, bh.ExpectStatus)
			if tcp {
				for _, kv := range [][2]string{{"path", bh.Path}, {"method", bh.Method}, {"host", bh.Host}, {"expect_status", bh.ExpectStatus}} {
					if kv[1] != "" {
						v.add(bpath+".health_check."+kv[0], "only applies to type http, got the pool's type tcp")
					}
				}
			}
			if b.Region != "" {
				v.regionName(bpath+".region", b.Region)
			}
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
			v.add(path+".host", "%s", msg)
			hostOK = false
		}
		switch {
		case r.PathPrefix == "":
		case !strings.HasPrefix(r.PathPrefix, "/"):
			v.add(path+".path_prefix", "must be empty or start with \"/\", got %s", quote(r.PathPrefix))
		case strings.ContainsAny(r.PathPrefix, "?#"):
			v.add(path+".path_prefix", "must be a path without query or fragment, got %s", quote(r.PathPrefix))
		case strings.IndexFunc(r.PathPrefix, isSpaceOrControl) >= 0:
			v.add(path+".path_prefix", "must not contain spaces or control characters, got %s", quote(r.PathPrefix))
		}
		switch {
		case r.Pool == "":
			v.add(path+".pool", "required")
		case !pools[r.Pool]:
			v.add(path+".pool", "unknown pool %s", quote(r.Pool))
		}
		v.oneOf(path+".geo", r.Geo, GeoOff, GeoNearest, GeoRedirect)
		if r.Geo == GeoRedirect && !redirects {
			v.add(path+".geo", "\"redirect\" needs a geo.regions[] entry with a redirect_host to send clients to")
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
			v.add(path, "same host and path_prefix as routes[%d]; the second route could never match", j)
		} else {
			seen[k] = i
		}
	}
}

// checkHostPort returns why addr is not a usable host:port, or "". Listeners pass minPort 0
// (port 0 picks a free port, which tests rely on) and allow an empty host (all interfaces).
func checkHostPort(addr string, minPort int, hostRequired bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			switch ae.Err {
			case "missing port in address":
				return "missing port"
			case "too many colons in address":
				return "IPv6 addresses must be in brackets, e.g. \"[::1]:8080\""
			}
			return ae.Err
		}
		return err.Error()
	}
	if msg := hostrule.Port(port, minPort); msg != "" {
		return msg
	}
	switch {
	case host == "":
		if hostRequired {
			return "missing host"
		}
	case strings.HasPrefix(addr, "["):
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return fmt.Sprintf("%s in brackets is not an IPv6 address", quote(host))
		}
	default:
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			return ""
		}
		if msg := hostrule.Name(host); msg != "" {
			return fmt.Sprintf("invalid host %s: %s", quote(host), msg)
		}
	}
	return ""
}

// checkHostOrIP returns why h is not a bare host name or IP address, or "". Ports and
// brackets are refused because the value is used where only a host fits (a TLS server name,
// a registered service address).
func checkHostOrIP(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return fmt.Sprintf("must be a host name or IP address without a port, got %s", quote(h))
	}
	if strings.HasPrefix(h, "[") {
		return fmt.Sprintf("write an IPv6 address without brackets, got %s", quote(h))
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("an address with a zone means nothing to other machines, got %s", quote(h))
		}
		return ""
	}
	if msg := hostrule.Name(h); msg != "" {
		return fmt.Sprintf("invalid host %s: %s", quote(h), msg)
	}
	return ""
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

// isWordChar reports whether r may appear in a Consul tag prefix: [A-Za-z0-9_-].
func isWordChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// isDatacenterName reports whether s is a valid Consul datacenter name. Consul lower-cases the
// agent's datacenter and accepts only [a-z0-9_-], and a query for any other spelling finds no
// datacenter at runtime, so the mistake is caught here instead.
func isDatacenterName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !isWordChar(r) || unicode.IsUpper(r) }) < 0
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
