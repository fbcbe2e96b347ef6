package admin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// peersPrefix starts the paths that ask another node of the cluster:
// /admin/peers/NODE/ENDPOINT answers what NODE's /admin/ENDPOINT answers.
const peersPrefix = "/admin/peers/"

// peerEndpoints are the endpoints a node forwards to a peer, with the method each takes. It
// is a short list on purpose: the forward lets one admin listener read the whole cluster and
// drain any node, and nothing more (no config changes, no backend drains, which every node
// already applies cluster-wide, and no forward of a forward).
var peerEndpoints = map[string]string{
	"status":   http.MethodGet,
	"stats":    http.MethodGet,
	"sessions": http.MethodGet,
	"pools":    http.MethodGet,
	"routes":   http.MethodGet,
	"health":   http.MethodGet,
	"config":   http.MethodGet,
	"drain":    http.MethodPost,
	"undrain":  http.MethodPost,
}

// maxPeerBody bounds a peer's answer that is relayed; the pools of a large cluster fit.
const maxPeerBody = 16 << 20

func newPeerClient() *http.Client {
	return &http.Client{
		// No proxy from the environment: peers are reached directly, like gossip reaches them.
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		Timeout: 20 * time.Second,
		// A peer's admin API never redirects; following one would send credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// forward relays r, already authenticated here, to a peer's admin API: the same endpoint
// under /admin/, the same method and the same credentials, on the admin port the peer
// gossips, or else the port r arrived on. rest is the path after peersPrefix.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, rest string) {
	node, endpoint, ok := strings.Cut(rest, "/")
	if !ok || node == "" || endpoint == "" {
		s.writeError(w, http.StatusNotFound, "want /admin/peers/NODE/ENDPOINT")
		return
	}
	method, known := peerEndpoints[endpoint]
	if !known {
		names := make([]string, 0, len(peerEndpoints))
		for n := range peerEndpoints {
			names = append(names, n)
		}
		slices.Sort(names)
		s.writeError(w, http.StatusNotFound, fmt.Sprintf("endpoint %q is not forwarded to peers; forwarded: %s", endpoint, strings.Join(names, ", ")))
		return
	}
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
		w.Header().Set("Allow", allow)
		s.writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		return
	}
	host, peerPort, err := s.ctrl.PeerAdmin(node)
	if err != nil {
		if errors.Is(err, ErrUnknownPeer) {
			s.writeError(w, http.StatusNotFound, fmt.Sprintf("no live peer %q in the cluster", node))
			return
		}
		s.writeError(w, http.StatusBadGateway, fmt.Sprintf("peer %q: %v", node, err))
		return
	}
	port := strconv.Itoa(peerPort)
	if peerPort == 0 {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		_, port, err = net.SplitHostPort(fmt.Sprint(local))
		if local == nil || err != nil {
			s.writeError(w, http.StatusInternalServerError, "cannot tell the admin port this request came in on")
			return
		}
	}
	addr := net.JoinHostPort(host, port)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+"/admin/"+endpoint, nil)
	if err != nil {
		s.writeError(w, http.StatusBadGateway, fmt.Sprintf("peer %q at %s: %v", node, addr, err))
		return
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		s.writeError(w, http.StatusBadGateway, fmt.Sprintf("peer %q at %s: %v", node, addr, err))
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody+1))
	switch {
	case err != nil:
		s.writeError(w, http.StatusBadGateway, fmt.Sprintf("peer %q at %s: reading the answer: %v", node, addr, err))
		return
	case len(body) > maxPeerBody:
		s.writeError(w, http.StatusBadGateway, fmt.Sprintf("peer %q at %s: answer over %d bytes", node, addr, maxPeerBody))
		return
	}
	if method == http.MethodPost {
		s.log.Info("admin request forwarded to peer", slog.String("peer", node), slog.String("endpoint", endpoint),
			slog.Int("status", resp.StatusCode), slog.String("remote_ip", peerIP(r.RemoteAddr).String()))
	}
	h := w.Header()
	for _, k := range []string{"Content-Type", "Retry-After", "Allow"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}
