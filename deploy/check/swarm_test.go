package check

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSwarmStack loads deploy/swarm/veloflux-stack.yml as `docker stack deploy` reads it and
// checks what makes it a cluster: a global service in host mode, secrets handed over as files
// under the names VeloFlux reads, the config as a Swarm config, gossip through tasks.<service>,
// rolling updates that drain first, a health check the image can run, and an example backend
// registered in Consul with routing tags. deploy/swarm/config.yaml must pass `veloflux
// validate` with the secrets as Swarm mounts them.
func TestSwarmStack(t *testing.T) {
	p := loadCompose(t, "../swarm/veloflux-stack.yml", nil)
	s := service(t, p, "veloflux")

	if s.Deploy == nil || s.Deploy.Mode != "global" {
		t.Fatalf("deploy %+v, want mode global", s.Deploy)
	}
	if len(s.Ports) == 0 {
		t.Fatal("no published ports")
	}
	published := map[string]uint32{}
	for _, pc := range s.Ports {
		if pc.Mode != "host" {
			t.Errorf("port %s->%d is published in %q mode: only host mode keeps client addresses", pc.Published, pc.Target, pc.Mode)
		}
		published[pc.Published] = pc.Target
	}
	u := s.Deploy.UpdateConfig
	if u == nil || u.Parallelism == nil || *u.Parallelism != 1 || u.Order != "stop-first" || u.FailureAction != "rollback" {
		t.Errorf("update_config %+v, want one task at a time, stop-first, rollback on failure", u)
	}
	checkHealthcheck(t, s)

	// Secrets: each *_FILE variable names the mount of a secret the service is given, and
	// every secret is created outside the file.
	mounted := map[string]bool{}
	for _, sec := range s.Secrets {
		target := sec.Target
		if target == "" {
			target = sec.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		mounted[target] = true
		if def, ok := p.Secrets[sec.Source]; !ok || !bool(def.External) {
			t.Errorf("secret %s: %+v, want an external secret", sec.Source, def)
		}
	}
	env := environ(s.Environment)
	dir := t.TempDir()
	secretValues := map[string]string{
		"VF_ADMIN_PASS_FILE":     "admin-password",
		"VFX_GOSSIP_KEY_FILE":    "rCsvCPIVIeiMVBILzMUsLH7JBMO5U8FGxLhtTZjIWtE=",
		"VFX_STICKY_SECRET_FILE": strings.Repeat("x", 48),
	}
	var nodeEnv []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		secret, isSecret := secretValues[name]
		if !isSecret {
			nodeEnv = append(nodeEnv, kv)
			continue
		}
		if !mounted[value] {
			t.Errorf("%s=%s: no secret is mounted there (mounted: %v)", name, value, mounted)
		}
		// Stand in for the mount: the same content in a file of the test's own.
		local := filepath.Join(dir, filepath.Base(value))
		if err := os.WriteFile(local, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		nodeEnv = append(nodeEnv, name+"="+local)
		delete(secretValues, name)
	}
	for name := range secretValues {
		t.Errorf("%s is not set: that secret never reaches VeloFlux", name)
	}

	source := checkConfigTarget(t, s)
	def := p.Configs[source]
	if !bool(def.External) || def.Name == "" {
		t.Errorf("config %s: %+v, want an external Swarm config with a versioned name", source, def)
	}
	yaml, err := os.ReadFile("../swarm/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := validate(t, string(yaml), nodeEnv)
	checkGrace(t, "veloflux", s.StopGracePeriod, cfg.Global.DrainTimeout)
	if published["80"] != uint32(port(t, cfg.Global.BindAddress)) {
		t.Errorf("port 80 goes to %d, the proxy listens on %s", published["80"], cfg.Global.BindAddress)
	}
	if !cfg.Cluster.Enabled {
		t.Fatal("cluster not enabled")
	}
	gossipPort := port(t, cfg.Cluster.BindAddress)
	wantSeed := net.JoinHostPort("tasks."+s.Name, fmt.Sprint(gossipPort))
	if !slices.Contains(cfg.Cluster.Seeds, wantSeed) {
		t.Errorf("cluster.seeds %v, want %s", cfg.Cluster.Seeds, wantSeed)
	}
	for _, proto := range []string{"tcp", "udp"} {
		if !slices.Contains(s.Expose, fmt.Sprintf("%d/%s", gossipPort, proto)) {
			t.Errorf("expose %v lacks the gossip port %d/%s", s.Expose, gossipPort, proto)
		}
	}
	if len(s.Networks) != 1 {
		t.Fatalf("networks %v, want the one overlay the tasks gossip on", s.Networks)
	}
	for n := range s.Networks {
		if p.Networks[n].Driver != "overlay" {
			t.Errorf("network %s: driver %q, want overlay (tasks.%s resolves only there)", n, p.Networks[n].Driver, s.Name)
		}
	}
	if !cfg.Discovery.Consul.Enabled || !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "CONSUL_HTTP_ADDR=http") }) {
		t.Errorf("Consul discovery %v without CONSUL_HTTP_ADDR in %v", cfg.Discovery.Consul.Enabled, env)
	}

	// The example backend is registered in Consul by its address on the stack's network,
	// with the tags that route it.
	reg := strings.Join(service(t, p, "whoami-register").Command, " ")
	for _, want := range []string{"consul services register", "-address=whoami", "-tag=veloflux.enable=true", "-tag=veloflux.route=/whoami", "consul services deregister"} {
		if !strings.Contains(reg, want) {
			t.Errorf("whoami-register command %q lacks %q", reg, want)
		}
	}
	service(t, p, "whoami")
}
