package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Registration is how a VeloFlux node advertises itself as a Consul service, so that DNS,
// other load balancers and VeloFlux peers (which read the gossip address from Meta) find it.
type Registration struct {
	// RegisterConfig is discovery.consul.register. Zero values that have a default take it:
	// Name "veloflux", ID "<Name>-<hostname>-<Port>", CheckInterval 5s,
	// DeregisterCriticalAfter 1m. Enabled is the caller's business.
	RegisterConfig
	// Port is the proxy listener port, 1..65535. Required.
	Port int
	// Meta is the service metadata, e.g. "gossip_addr" (read by peers to join the gossip
	// cluster) and "version". Keys match [A-Za-z0-9_-]{1,128} and do not start with
	// "consul-"; at most 64 keys; values at most 512 bytes. These are Consul's own limits,
	// checked here so a bad key fails at start-up rather than on every retry.
	Meta map[string]string
	// CheckURL is the HTTP check Consul runs against the node, its /readyz on the metrics
	// listener, e.g. "http://10.0.0.5:8080/readyz". Required: without a check, Consul would
	// keep sending clients to a node whose process died while its agent lives on.
	CheckURL string
}

const (
	defaultServiceName             = "veloflux"
	defaultCheckInterval           = 5 * time.Second
	defaultDeregisterCriticalAfter = time.Minute

	// agentCallTimeout bounds every call to the local agent, so a hung agent cannot stall
	// shutdown (the final deregistration) or SetDraining.
	agentCallTimeout = 5 * time.Second
	// consulMinCheckInterval is the agent's floor for check intervals; we send it
	// explicitly so the registration shows what the agent actually runs.
	consulMinCheckInterval = time.Second
	drainingReason         = "veloflux draining"

	metaMaxKeys        = 64
	metaKeyMaxLength   = 128
	metaValueMaxLength = 512
	metaReservedPrefix = "consul-"

	// sectionKey is where Config sits in the config file, for errors outside config's check.
	sectionKey      = "discovery.consul"
	registrationKey = sectionKey + ".register"
)

var metaKeyFormat = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// withDefaults fills the documented defaults; hostname is only used for the default ID.
func (reg Registration) withDefaults(hostname string) Registration {
	if reg.Name == "" {
		reg.Name = defaultServiceName
	}
	if reg.ID == "" {
		reg.ID = reg.Name + "-" + hostname + "-" + strconv.Itoa(reg.Port)
	}
	if reg.CheckInterval == 0 {
		reg.CheckInterval = defaultCheckInterval
	}
	if reg.DeregisterCriticalAfter == 0 {
		reg.DeregisterCriticalAfter = defaultDeregisterCriticalAfter
	}
	return reg
}

// Validate returns every problem at once, each with its config key. Zero values that have
// a default are valid.
func (reg Registration) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", registrationKey, field, fmt.Sprintf(format, args...)))
	}
	// Name and ID end up in agent URL paths (/v1/agent/service/<ID>), where a '/' would
	// address another resource.
	for _, f := range []struct{ key, val string }{{"name", reg.Name}, {"id", reg.ID}} {
		if strings.ContainsAny(f.val, "/ \t\r\n") {
			bad(f.key, "must not contain '/' or whitespace, got %q", f.val)
		}
	}
	if reg.Address != "" {
		if err := validateAddress(reg.Address); err != nil {
			bad("address", "%v", err)
		}
	}
	if reg.Port < 1 || reg.Port > 65535 {
		bad("port", "must be 1..65535, got %d", reg.Port)
	}
	for i, tag := range reg.Tags {
		if tag == "" {
			bad(fmt.Sprintf("tags[%d]", i), "must not be empty")
		}
	}
	if len(reg.Meta) > metaMaxKeys {
		bad("meta", "at most %d keys, got %d", metaMaxKeys, len(reg.Meta))
	}
	for _, k := range slices.Sorted(maps.Keys(reg.Meta)) {
		key := fmt.Sprintf("meta[%q]", k)
		switch {
		case len(k) == 0 || len(k) > metaKeyMaxLength:
			bad(key, "key must be 1..%d characters", metaKeyMaxLength)
		case !metaKeyFormat.MatchString(k):
			bad(key, "key must match [A-Za-z0-9_-]")
		case strings.HasPrefix(k, metaReservedPrefix):
			bad(key, "key prefix %q is reserved by Consul", metaReservedPrefix)
		}
		if len(reg.Meta[k]) > metaValueMaxLength {
			bad(key, "value must be at most %d bytes, got %d", metaValueMaxLength, len(reg.Meta[k]))
		}
	}
	if reg.CheckURL == "" {
		bad("check_url", "required: the node's /readyz URL, e.g. http://10.0.0.5:8080/readyz")
	} else if u, err := url.Parse(reg.CheckURL); err != nil {
		bad("check_url", "%v", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("check_url", "must be an absolute http or https URL, got %q", reg.CheckURL)
	}
	if reg.CheckInterval < 0 {
		bad("check_interval", "must be > 0, got %s", reg.CheckInterval)
	}
	if reg.DeregisterCriticalAfter < 0 {
		bad("deregister_critical_after", "must be > 0, got %s", reg.DeregisterCriticalAfter)
	}
	return errors.Join(errs...)
}

// validateAddress accepts a host name or IP without a port. The agent refuses 0.0.0.0 and
// ::, and no client could dial them anyway: a listener on all interfaces must advertise one.
func validateAddress(addr string) error {
	if ip := net.ParseIP(addr); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("%s is not an address clients can reach; advertise one of the node's addresses", addr)
		}
		return nil
	}
	if strings.ContainsAny(addr, ":/ \t\r\n") {
		return fmt.Errorf("must be a host name or IP without port, got %q", addr)
	}
	return nil
}

// Registrar keeps one Registration in the local Consul agent while Run runs, and puts the
// service in maintenance while the node drains.
type Registrar struct {
	agent  *api.Agent
	reg    Registration // defaults applied
	logger *slog.Logger

	running atomic.Bool

	// mu serialises registration and maintenance calls, so that the agent ends in the
	// state of the last SetDraining even when it races a re-registration.
	mu       sync.Mutex
	draining bool // the maintenance state asked for
	synced   bool // the agent is known to hold draining
}

// NewRegistrar checks reg, fills its defaults and returns a Registrar that registers it
// through client's local agent. A nil logger discards logs; the caller names the component.
func NewRegistrar(client *api.Client, reg Registration, logger *slog.Logger) (*Registrar, error) {
	if client == nil {
		return nil, errors.New("consul registrar: nil client")
	}
	if reg.ID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("consul registrar: hostname for the default service ID: %w", err)
		}
		reg = reg.withDefaults(host)
	} else {
		reg = reg.withDefaults("")
	}
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Copy what the caller could still mutate after handing reg over.
	reg.Tags, reg.Meta = slices.Clone(reg.Tags), maps.Clone(reg.Meta)
	return &Registrar{
		agent:  client.Agent(),
		reg:    reg,
		logger: logger.With("service_id", reg.ID),
	}, nil
}

// Run registers the service, then every CheckInterval asks the agent whether it still holds
// it and registers again when not: an agent restarted without its data directory, or Consul
// reaping the entry after DeregisterCriticalAfter, loses it. Agent errors are logged and
// retried at the next interval, except a 400 answer (the agent rejecting the request
// itself), which no retry can fix and which Run returns. When ctx ends, Run deregisters the
// service (best effort, bounded by 5s) and returns nil. A second Run while one runs
// returns an error at once.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("consul registrar %s: Run is already running", r.reg.ID)
	}
	defer r.running.Store(false)

	ticker := time.NewTicker(r.reg.CheckInterval)
	defer ticker.Stop()
	registered, failing := false, false
	for {
		var err error
		registered, err = r.sync(ctx, registered)
		switch {
		case ctx.Err() != nil:
			// Errors caused by the cancellation itself are not worth reporting.
		case err != nil && isStatus(err, http.StatusBadRequest):
			return err
		case err != nil && !failing:
			failing = true
			r.logger.Warn("consul registration not in sync; retrying every check interval",
				"interval", r.reg.CheckInterval, "err", err)
		case err != nil:
			r.logger.Debug("consul registration still not in sync", "err", err)
		case failing:
			failing = false
			r.logger.Info("consul registration in sync again")
		}
		select {
		case <-ctx.Done():
			r.deregister(ctx)
			return nil
		case <-ticker.C:
		}
	}
}

// sync brings the agent to the wanted state: service present, maintenance as asked. It
// reports whether the service is (or is still assumed to be) registered.
func (r *Registrar) sync(ctx context.Context, registered bool) (bool, error) {
	if registered {
		present, err := r.present(ctx)
		if err != nil {
			// Unknown: keep assuming it is there and look again next interval.
			return true, err
		}
		if !present {
			r.logger.Warn("consul agent lost the registration (agent restarted?); registering again")
			registered = false
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !registered {
		if err := r.registerLocked(ctx); err != nil {
			return false, err
		}
		// Registering replaces the service's checks, the maintenance check included.
		r.synced = false
		r.logger.Info("registered in consul", "name", r.reg.Name, "address", r.reg.Address, "port", r.reg.Port)
	}
	if !r.synced {
		if err := r.applyMaintenanceLocked(ctx); err != nil {
			return true, err
		}
	}
	return true, nil
}

// present asks the agent whether it holds the service.
func (r *Registrar) present(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	_, _, err := r.agent.Service(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	switch {
	case isStatus(err, http.StatusNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("consul: read service %s from the agent: %w", r.reg.ID, err)
	}
	return true, nil
}

func (r *Registrar) registerLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	interval := max(r.reg.CheckInterval, consulMinCheckInterval)
	svc := &api.AgentServiceRegistration{
		ID:      r.reg.ID,
		Name:    r.reg.Name,
		Address: r.reg.Address,
		Port:    r.reg.Port,
		Tags:    r.reg.Tags,
		Meta:    r.reg.Meta,
		Check: &api.AgentServiceCheck{
			Name:     "VeloFlux readiness",
			HTTP:     r.reg.CheckURL,
			Method:   http.MethodGet,
			Interval: interval.String(),
			// A /readyz slower than the interval is as good as down.
			Timeout: interval.String(),
			// Critical until the first check passes, so that a node just (re)registered gets
			// no traffic before it has shown it is ready, nor in the moment before a
			// draining node's maintenance is applied again.
			Status:                         api.HealthCritical,
			DeregisterCriticalServiceAfter: r.reg.DeregisterCriticalAfter.String(),
		},
	}
	// ReplaceExistingChecks drops checks an older configuration left under the same ID.
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.agent.ServiceRegisterOpts(svc, opts); err != nil {
		return fmt.Errorf("consul: register service %s: %w", r.reg.ID, err)
	}
	return nil
}

// applyMaintenanceLocked sends the wanted maintenance state to the agent.
func (r *Registrar) applyMaintenanceLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	var err error
	if r.draining {
		err = r.agent.EnableServiceMaintenanceOpts(r.reg.ID, drainingReason, q)
	} else {
		err = r.agent.DisableServiceMaintenanceOpts(r.reg.ID, q)
	}
	if err != nil {
		return fmt.Errorf("consul: set maintenance=%t on service %s: %w", r.draining, r.reg.ID, err)
	}
	r.synced = true
	return nil
}

// SetDraining puts the service in maintenance (draining true), which makes it critical at
// once rather than after the next failed check, or takes it out again. The state is kept
// and applied again whenever Run registers, and retried by Run after an error, so an
// error here means the agent has not taken it yet (for example before Run first
// registered). Each call waits at most 5s for the agent.
func (r *Registrar) SetDraining(draining bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining, r.synced = draining, false
	ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
	defer cancel()
	return r.applyMaintenanceLocked(ctx)
}

// deregister removes the service when Run ends. It is best effort: if it fails, Consul
// removes the entry DeregisterCriticalAfter after the check turns critical.
func (r *Registrar) deregister(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentCallTimeout)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.agent.ServiceDeregisterOpts(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	switch {
	case err == nil:
		r.logger.Info("deregistered from consul")
	case isStatus(err, http.StatusNotFound):
		// Already gone: the agent restarted or Consul reaped it.
	default:
		r.logger.Warn("consul deregistration failed; consul removes the entry once its check has been critical for deregister_critical_after",
			"deregister_critical_after", r.reg.DeregisterCriticalAfter, "err", err)
	}
}

// isStatus reports whether err is the agent answering with HTTP status code.
func isStatus(err error, code int) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == code
}
