package check

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestCompose loads docker-compose.yml as `docker compose` does and checks the quick start it
// promises: Consul with the demo backends registered by tags, three VeloFlux nodes clustered
// over encrypted gossip, node 1 on :80, :443, :8080 and :9000, admin credentials from the env
// file, and a configuration that `veloflux validate` accepts with that environment.
func TestCompose(t *testing.T) {
	p := loadCompose(t, "../../docker-compose.yml", nil)
	nodes := []string{"veloflux-1", "veloflux-2", "veloflux-3"}
	for _, name := range append(slices.Clone(nodes), "consul", "backend-1", "backend-2", "certs") {
		service(t, p, name)
	}

	published := map[string]string{} // "80/tcp" -> "8000"
	for _, pc := range service(t, p, "veloflux-1").Ports {
		published[pc.Published+"/"+pc.Protocol] = fmt.Sprint(pc.Target)
	}

	var hostnames []string
	for _, name := range nodes {
		s := service(t, p, name)
		hostnames = append(hostnames, s.Hostname)
		checkHealthcheck(t, s)
		for _, dep := range []struct{ name, cond string }{{"consul", "service_healthy"}, {"certs", "service_completed_successfully"}} {
			if d, ok := s.DependsOn[dep.name]; !ok || d.Condition != dep.cond {
				t.Errorf("%s: depends_on %s %+v, want condition %s", name, dep.name, d, dep.cond)
			}
		}
		env := environ(s.Environment)
		for _, v := range []string{"VF_ADMIN_USER", "VF_ADMIN_PASS", "VFX_GOSSIP_KEY", "VFX_STICKY_SECRET"} {
			if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, v+"=") && len(kv) > len(v)+1 }) {
				t.Errorf("%s: %s not set from the env file", name, v)
			}
		}
		if len(s.EnvFiles) != 1 || filepath.Base(s.EnvFiles[0].Path) != "veloflux.env" {
			t.Errorf("%s: env_file %+v, want deploy/compose/veloflux.env", name, s.EnvFiles)
		}

		source := checkConfigTarget(t, s)
		cfg := validate(t, p.Configs[source].Content, env)
		checkGrace(t, name, s.StopGracePeriod, cfg.Global.DrainTimeout)

		if name == "veloflux-1" {
			for host, container := range map[string]int{
				"80/tcp":   port(t, cfg.Global.BindAddress),
				"443/tcp":  port(t, cfg.Global.TLSBindAddress),
				"443/udp":  port(t, cfg.Global.TLSBindAddress), // HTTP/3
				"8080/tcp": port(t, cfg.Global.MetricsAddress),
				"9000/tcp": port(t, cfg.Global.AdminAddress),
			} {
				if published[host] != fmt.Sprint(container) {
					t.Errorf("veloflux-1 publishes %s on %q, want the configured port %d", host, published[host], container)
				}
			}
		}
		if !cfg.Cluster.Enabled || cfg.Cluster.GossipKey == "" {
			t.Errorf("%s: cluster enabled %v, gossip key set %v: want both", name, cfg.Cluster.Enabled, cfg.Cluster.GossipKey != "")
		}
		if host, _, _ := net.SplitHostPort(cfg.Discovery.Consul.Address); !cfg.Discovery.Consul.Enabled || host != "consul" {
			t.Errorf("%s: Consul discovery %v at %s, want the consul service", name, cfg.Discovery.Consul.Enabled, cfg.Discovery.Consul.Address)
		}
		certDir := filepath.Dir(cfg.Global.TLS.CertFile)
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == "certs" && v.Target == certDir }) {
			t.Errorf("%s: the certificate directory %s is not the certs volume", name, certDir)
		}
		if name == nodes[len(nodes)-1] {
			// Every node is a seed of every other, by the host name Compose gives it.
			var seeds []string
			for _, h := range hostnames {
				seeds = append(seeds, net.JoinHostPort(h, fmt.Sprint(port(t, cfg.Cluster.BindAddress))))
			}
			if !slices.Equal(cfg.Cluster.Seeds, seeds) {
				t.Errorf("cluster.seeds %v, want the nodes %v", cfg.Cluster.Seeds, seeds)
			}
		}
	}

	// The certs job writes the files the nodes read, owned by the image's user.
	certs := service(t, p, "certs")
	script := strings.Join(certs.Command, " ")
	for _, want := range []string{"generate_cert.go", "-host localhost", "chown 65532:65532 cert.pem key.pem"} {
		if !strings.Contains(script, want) {
			t.Errorf("certs command %q lacks %q", script, want)
		}
	}

	// Consul registers the backends from a file its own loader accepts, with tags that route
	// them, at addresses that are services of this file.
	consul := service(t, p, "consul")
	if len(consul.Configs) != 1 || !strings.Contains(strings.Join(consul.Command, " "), "-config-file "+consul.Configs[0].Target) {
		t.Fatalf("consul: command %v does not load its config %+v", consul.Command, consul.Configs)
	}
	services := p.Configs[consul.Configs[0].Source].Content
	var defs struct {
		Services []struct {
			Name, Address string
			Port          int
			Tags          []string
			Checks        []struct{ HTTP string }
		}
	}
	if err := json.Unmarshal([]byte(services), &defs); err != nil {
		t.Fatalf("demo services: %v", err)
	}
	if len(defs.Services) < 2 {
		t.Fatalf("%d demo services, want at least 2", len(defs.Services))
	}
	for _, d := range defs.Services {
		service(t, p, d.Address)
		if !slices.Contains(d.Tags, "veloflux.enable=true") || !slices.ContainsFunc(d.Tags, func(s string) bool { return strings.HasPrefix(s, "veloflux.route=") }) {
			t.Errorf("service %s at %s: tags %v do not opt in and route", d.Name, d.Address, d.Tags)
		}
		if len(d.Checks) != 1 || !strings.HasPrefix(d.Checks[0].HTTP, fmt.Sprintf("http://%s:%d/", d.Address, d.Port)) {
			t.Errorf("service %s at %s:%d: checks %+v do not probe it", d.Name, d.Address, d.Port, d.Checks)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "demo-services.json")
	dataDir := filepath.Join(dir, "data-dir.json")
	if err := os.WriteFile(file, []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	// The dev agent sets data_dir itself; validate needs one to judge a complete config.
	if err := os.WriteFile(dataDir, []byte(`{"data_dir": "`+filepath.Join(dir, "data")+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(consulBin(t), "validate", file, dataDir).CombinedOutput(); err != nil {
		t.Errorf("consul validate of the demo services: %v\n%s", err, out)
	}
}
