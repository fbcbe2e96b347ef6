// Package client talks to a VeloFlux node's admin API, for the veloflux command line: it
// sends the credentials, reaches a peer through the node's /admin/peers/NODE/ forward, and
// turns every failure into one error that says what went wrong (node unreachable, credentials
// refused, or the API's own message). The types are the fields of the admin documents that
// the command line shows; -o json prints the documents whole, as Raw returns them.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is one node's admin API. Its zero value is not usable: create it with New.
type Client struct {
	base           string // http://host:port
	user, password string
	// node is the peer whose API is asked through this node; "" asks this node.
	node string
	http *http.Client
}

// New returns a client of the admin API at addr ("host:port" or "http://host:port") with
// basic-auth credentials (both empty: none), asking node through it ("" for the node at
// addr itself). timeout bounds each request.
func New(addr, user, password, node string, timeout time.Duration) (*Client, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("admin address %q: want host:port or http://host:port", addr)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	return &Client{
		base: "http://" + u.Host, user: user, password: password, node: node,
		http: &http.Client{
			Timeout: timeout,
			// The admin API does not redirect; never carry the credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			// No proxy from the environment: the admin API is reached directly.
			Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: timeout}).DialContext},
		},
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// APIError is an answer other than 2xx, with the API's message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return "credentials refused (set VF_ADMIN_USER and VF_ADMIN_PASS to the node's)"
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// ErrUnreachable wraps failures to reach the node at all.
var ErrUnreachable = errors.New("node unreachable")

// Raw sends method to the endpoint (a path under /admin/, such as "status" or
// "backends/drain") with query, and returns the JSON document answered.
func (c *Client) Raw(ctx context.Context, method, endpoint string, query url.Values) (json.RawMessage, error) {
	path := "/admin/" + endpoint
	if c.node != "" {
		path = "/admin/peers/" + url.PathEscape(c.node) + "/" + endpoint
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.user != "" || c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &APIError{Status: resp.StatusCode, Message: msg}
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s %s: the answer is not JSON", method, path)
	}
	return bytes.TrimSpace(body), nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func get[T any](ctx context.Context, c *Client, endpoint string) (T, error) {
	var out T
	raw, err := c.Raw(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("GET %s: %w", endpoint, err)
	}
	return out, nil
}

// Status is GET /admin/status.
func (c *Client) Status(ctx context.Context) (Status, error) { return get[Status](ctx, c, "status") }

// Pools is GET /admin/pools.
func (c *Client) Pools(ctx context.Context) ([]Pool, error) { return get[[]Pool](ctx, c, "pools") }

// Health is GET /admin/health.
func (c *Client) Health(ctx context.Context) ([]Health, error) {
	return get[[]Health](ctx, c, "health")
}

// Routes is GET /admin/routes.
func (c *Client) Routes(ctx context.Context) ([]Route, error) { return get[[]Route](ctx, c, "routes") }

// Sessions is GET /admin/sessions.
func (c *Client) Sessions(ctx context.Context) (Sessions, error) {
	return get[Sessions](ctx, c, "sessions")
}

// Stats is GET /admin/stats.
func (c *Client) Stats(ctx context.Context) (Stats, error) { return get[Stats](ctx, c, "stats") }

// Status is the node as GET /admin/status shows it.
type Status struct {
	Version         string    `json:"version"`
	Started         time.Time `json:"started"`
	UptimeSeconds   int64     `json:"uptime_seconds"`
	Draining        bool      `json:"draining"`
	InFlight        int64     `json:"inflight"`
	TableVersion    uint64    `json:"table_version"`
	ConfigFile      string    `json:"config_file"`
	ListenAddresses []string  `json:"listen_addresses"`
	HealthTargets   int       `json:"health_targets"`
	HealthProbed    int       `json:"health_probed"`
	LastReload      struct {
		At    time.Time `json:"at"`
		OK    bool      `json:"ok"`
		Error string    `json:"error"`
	} `json:"last_reload"`
	Consul *struct {
		Datacenters []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			LastError string `json:"last_error"`
		} `json:"datacenters"`
	} `json:"consul"`
	Cluster *struct {
		Name     string   `json:"name"`
		Members  []Member `json:"members"`
		Sessions int      `json:"sessions"`
	} `json:"cluster"`
}

// Member is one gossip member in the status.
type Member struct {
	Name     string `json:"Name"`
	Addr     string `json:"Addr"`
	Region   string `json:"Region"`
	Version  string `json:"Version"`
	State    string `json:"State"`
	Draining bool   `json:"Draining"`
}

// Pool is one pool of GET /admin/pools.
type Pool struct {
	Name      string    `json:"name"`
	Algorithm string    `json:"algorithm"`
	Sticky    bool      `json:"sticky_sessions"`
	Healthy   int       `json:"healthy_backends"`
	Backends  []Backend `json:"backends"`
}

// Backend is one backend of a Pool.
type Backend struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Region    string `json:"region"`
	Weight    int    `json:"weight"`
	Healthy   bool   `json:"healthy"`
	Active    int64  `json:"active_connections"`
	LastError string `json:"last_error"`
}

// Health is one backend of GET /admin/health.
type Health struct {
	Backend string `json:"backend"`
	Pool    string `json:"pool"`
	Healthy bool   `json:"healthy"`
	Why     string `json:"why"`
	Drained bool   `json:"drained"`
}

// Route is one route of GET /admin/routes.
type Route struct {
	Host        string `json:"Host"`
	PathPrefix  string `json:"PathPrefix"`
	StripPrefix bool   `json:"StripPrefix"`
	Pool        string `json:"Pool"`
	Geo         string `json:"Geo"`
}

// Sessions is GET /admin/sessions.
type Sessions struct {
	Scope     string `json:"scope"`
	Total     int    `json:"total"`
	ByBackend []struct {
		Backend string `json:"backend"`
		Pins    int    `json:"pins"`
	} `json:"by_backend"`
}

// Stats is GET /admin/stats.
type Stats struct {
	Requests     int64            `json:"requests"`
	ByClass      map[string]int64 `json:"by_class"`
	Retries      int64            `json:"retries"`
	RateLimited  int64            `json:"rate_limited"`
	InFlight     int64            `json:"inflight"`
	Certificates []struct {
		CertFile string    `json:"cert_file"`
		Expires  time.Time `json:"expires"`
	} `json:"certificates"`
}

// Drain drains (drained true) or undrains the node asked.
func (c *Client) Drain(ctx context.Context, drained bool) (json.RawMessage, error) {
	return c.Raw(ctx, http.MethodPost, map[bool]string{true: "drain", false: "undrain"}[drained], nil)
}

// DrainBackend drains or undrains one backend on every node of the cluster. Backend drains
// are shared by the cluster, so they always go to the node at the client's address.
func (c *Client) DrainBackend(ctx context.Context, id string, drained bool) (json.RawMessage, error) {
	direct := *c
	direct.node = ""
	return direct.Raw(ctx, http.MethodPost, map[bool]string{true: "backends/drain", false: "backends/undrain"}[drained],
		url.Values{"backend": {id}})
}
