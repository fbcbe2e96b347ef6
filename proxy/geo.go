package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// geoMode is a route's compiled discovery.Route.Geo.
type geoMode uint8

const (
	geoOff      geoMode = iota // balance over every healthy backend of the pool
	geoNearest                 // serve from the nearest region with a healthy backend
	geoRedirect                // as geoNearest, but send clients of other regions there with a 307
)

func parseGeoMode(s string) (geoMode, bool) {
	switch s {
	case "", "off":
		return geoOff, true
	case "nearest":
		return geoNearest, true
	case "redirect":
		return geoRedirect, true
	}
	return geoOff, false
}

// regionName is a region with its value for the geo response header, made once per region
// change rather than once per response. header has len == cap, so an Add to the response
// header copies it instead of writing into the shared array.
type regionName struct {
	name   string
	header []string
}

func newRegionName(name string) *regionName {
	return &regionName{name: name, header: []string{name}[:1:1]}
}

// unknownCountryLabel and noRegionLabel keep veloflux_geo_requests_total's labels non-empty.
const (
	unknownCountryLabel = "unknown"
	noRegionLabel       = "none" // no healthy backend: the request was neither served nor redirected
)

// reservedGeoHeaders are response headers the proxy or HTTP itself manages; naming one of
// them as the geo response header would corrupt responses rather than label them.
var reservedGeoHeaders = []string{
	"Connection", "Content-Length", "Content-Type", "Keep-Alive", "Location", "Proxy-Connection",
	"Set-Cookie", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "X-Request-Id",
}

// geoSettings is the validated geo part of Options.
type geoSettings struct {
	locator       Locator
	node          *regionName       // the locator's NodeRegion; nil without a locator
	header        string            // canonical response header name; "" none
	redirectHosts map[string]string // region -> host[:port]; a private copy
}

func newGeoSettings(opts Options) (geoSettings, error) {
	var errs []error
	g := geoSettings{locator: opts.Locator}
	if opts.Locator != nil {
		g.node = newRegionName(opts.Locator.NodeRegion())
		if g.node.name == "" {
			errs = append(errs, errors.New("geo locator: node region is empty"))
		}
	}
	if h := opts.GeoResponseHeader; h != "" {
		g.header = http.CanonicalHeaderKey(h)
		switch {
		case !httpguts.ValidHeaderFieldName(h):
			errs = append(errs, fmt.Errorf("geo response header %q: not a valid header name", h))
		case containsFold(reservedGeoHeaders, h):
			errs = append(errs, fmt.Errorf("geo response header %q: managed by the proxy, choose another name", h))
		}
	}
	if len(opts.RedirectHosts) > 0 {
		g.redirectHosts = make(map[string]string, len(opts.RedirectHosts))
		for region, host := range opts.RedirectHosts {
			if region == "" {
				errs = append(errs, fmt.Errorf("redirect host %q: empty region name", host))
				continue
			}
			if !validRedirectHost(host) {
				errs = append(errs, fmt.Errorf("redirect host of region %q: %q is not host[:port]", region, host))
				continue
			}
			g.redirectHosts[region] = host
		}
	}
	return g, errors.Join(errs...)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// validRedirectHost accepts a host name or IP address with an optional numeric port, and
// nothing that would change the meaning of the Location built from it (user info, path).
func validRedirectHost(host string) bool {
	if host == "" || strings.ContainsAny(host, "/?#@\\ ") {
		return false
	}
	u, err := url.Parse("http://" + host)
	return err == nil && u.Host == host && u.Hostname() != ""
}

// regionOf is the region a backend counts as: its own, or the node's when it has none.
func (st *reqState) regionOf(u *upstream) string {
	if r := u.Region(); r != "" {
		return r
	}
	return st.node
}

// nearestRank returns the index in the client's order of the nearest region that has a
// candidate, or len(order) when no candidate is in a region the locator knows. The inner
// scan stops at the best rank found so far, so the common case (the nearest region has
// backends) costs about one comparison per candidate.
func (st *reqState) nearestRank() int {
	best := len(st.order)
	for _, u := range st.ups {
		r := st.regionOf(u)
		for i := 0; i < best; i++ {
			if st.order[i] == r {
				best = i
				break
			}
		}
		if best == 0 {
			break
		}
	}
	return best
}

// narrow keeps the candidates of one region: prefer when it has any (a retry or a sticky
// session stays where it was), else the nearest region in the client's order that has any.
// When no candidate is in a region of the order, all of them stay.
func (st *reqState) narrow(prefer string) {
	if prefer != "" && st.keepRegion(prefer) {
		return
	}
	if rank := st.nearestRank(); rank < len(st.order) {
		st.keepRegion(st.order[rank])
	}
}

// keepRegion reduces the candidates to those in region r and reports whether there were
// any; when there were none it changes nothing.
func (st *reqState) keepRegion(r string) bool {
	n := 0
	for i, u := range st.ups {
		if st.regionOf(u) == r {
			st.cands[n], st.ups[n] = st.cands[i], u
			n++
		}
	}
	if n == 0 {
		return false
	}
	st.cands, st.ups = st.cands[:n], st.ups[:n]
	return true
}

// pinnedRegion returns the region of the pool's backend id, down or not, or "" when the
// pool no longer has it.
func (st *reqState) pinnedRegion(id string) string {
	for _, u := range st.pool.backends {
		if u.id == id {
			return st.regionOf(u)
		}
	}
	return ""
}

// servedRegion is the region label of a finished geo request: where its last backend runs,
// or the region it was redirected to.
func (st *reqState) servedRegion() string {
	switch {
	case st.backend != nil:
		return st.regionOf(st.backend)
	case st.geoRegion != "":
		return st.geoRegion
	}
	return noRegionLabel
}

// redirectTarget says where a geo: redirect request goes instead of being proxied: the
// nearest region with a healthy backend, when it is not this node's and has a redirect host.
func (p *Proxy) redirectTarget(st *reqState) (region, host string, ok bool) {
	rank := st.nearestRank()
	if rank == len(st.order) {
		return "", "", false
	}
	region = st.order[rank]
	if region == st.node {
		return "", "", false
	}
	host, ok = p.geo.redirectHosts[region]
	return region, host, ok
}

// redirect answers 307 to the same request URI on host. 307 keeps the method and body, so a
// POST is repeated as a POST; no-store because the answer depends on where the client is and
// on which regions are healthy right now.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, st *reqState, region, host string) {
	st.geoRegion = region
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI() // absolute-form request line: keep only path and query
		if !strings.HasPrefix(uri, "/") {
			uri = "/"
		}
	}
	loc := st.proto(r) + "://" + host + uri
	h := w.Header()
	h.Set("Location", loc)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Request-Id", st.reqID)
	if p.geo.header != "" {
		h.Set(p.geo.header, region)
	}
	w.WriteHeader(http.StatusTemporaryRedirect)
	_, _ = io.WriteString(w, "307 Temporary Redirect: "+loc+"\n")
}

// setGeoHeader names the region of the backend that answered in the client's response. It
// writes to the client's header map before the reverse proxy copies the backend's headers in,
// with a shared value slice, so it costs no allocation; the backend's own header of that name
// is dropped so a backend cannot claim another region.
func (p *Proxy) setGeoHeader(st *reqState, resp *http.Response) {
	resp.Header.Del(p.geo.header)
	v := p.geo.node.header
	if r := st.backend.region.Load(); r != nil && r.name != "" {
		v = r.header
	}
	st.rw.Header()[p.geo.header] = v
}

// proto is the scheme the client used: the listener's, or a trusted peer's X-Forwarded-Proto.
func (st *reqState) proto(r *http.Request) string {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if st.trusted {
		if v := r.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
	}
	return proto
}

func countryLabel(c string) string {
	if c == "" {
		return unknownCountryLabel
	}
	return c
}
