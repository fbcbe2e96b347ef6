package acme

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is what the admin API shows of ACME.
type Status struct {
	// Directory is the ACME server.
	Directory string `json:"directory"`
	// Storage names where certificates and locks live, e.g. "consulkv:veloflux/acme".
	Storage string `json:"storage"`
	// Names are the managed names, sorted.
	Names []NameStatus `json:"names"`
}

// NameStatus is one managed name.
type NameStatus struct {
	Name string `json:"name"`
	// State is "pending" (no certificate yet), "valid" or "expired".
	State string `json:"state"`
	// NotAfter and Serial describe the certificate served, when there is one.
	NotAfter time.Time `json:"not_after,omitzero"`
	Serial   string    `json:"serial,omitempty"`
	// LastAttempt and LastSuccess are this node's last order for the name and its last
	// success; zero when this node has not ordered it (another node may have).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the error of this node's last failed order, "" after a success.
	LastError string `json:"last_error,omitempty"`
	// FailuresInARow counts this node's failed orders since its last success.
	FailuresInARow int `json:"failures_in_a_row"`
}

// Status returns the managed names with the certificate each is served with.
func (m *Manager) Status() Status {
	m.mu.Lock()
	names := make([]NameStatus, 0, len(m.managed))
	for n := range m.managed {
		ns := NameStatus{Name: n, State: "pending"}
		if st := m.state[n]; st != nil {
			ns.LastAttempt, ns.LastSuccess, ns.LastError, ns.FailuresInARow = st.lastAttempt, st.lastSuccess, st.lastError, st.failures
		}
		names = append(names, ns)
	}
	m.mu.Unlock()
	now := time.Now()
	for i := range names {
		for _, c := range m.cache.AllMatchingCertificates(names[i].Name) {
			if c.Leaf == nil || !c.Leaf.NotAfter.After(names[i].NotAfter) {
				continue
			}
			names[i].NotAfter = c.Leaf.NotAfter
			names[i].Serial = serialHex(c.Leaf.SerialNumber.Bytes())
		}
		switch {
		case names[i].NotAfter.IsZero():
		case now.After(names[i].NotAfter):
			names[i].State = "expired"
		default:
			names[i].State = "valid"
		}
	}
	slices.SortFunc(names, func(a, b NameStatus) int { return strings.Compare(a.Name, b.Name) })
	return Status{Directory: m.cfg.Directory, Storage: fmt.Sprint(m.cfg.Storage), Names: names}
}

func serialHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}
