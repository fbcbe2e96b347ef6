package check

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/veloflux/veloflux/geo"
)

// TestNomadJob parses deploy/nomad/veloflux.nomad.hcl with HCL as Nomad does and checks its
// stanzas: a system job in two datacenters, one node at a time on update, the drain fitting
// inside kill_timeout after shutdown_delay, secrets from Nomad variables in templates, a
// readiness check on /readyz; then renders its templates for each datacenter, as Nomad would
// with sample variables, and runs `veloflux validate` on the result: discovery through the
// local Consul agent, joining through Consul registrations, each datacenter a region.
func TestNomadJob(t *testing.T) {
	job := parseJob(t, "../nomad/veloflux.nomad.hcl", "veloflux")
	if got := str(t, job, "type"); got != "system" {
		t.Errorf("type %q, want system", got)
	}
	dcs := strs(t, job, "datacenters")
	if len(dcs) != 2 {
		t.Fatalf("datacenters %v, want two", dcs)
	}
	update := block(t, job, "update")
	if n := num(t, update, "max_parallel"); n != 1 {
		t.Errorf("update.max_parallel %d, want 1", n)
	}
	group := block(t, job, "group", "edge")
	network := block(t, group, "network")
	ports := map[string]int64{}
	for _, b := range network.Blocks {
		if b.Type == "port" {
			ports[b.Labels[0]] = num(t, b.Body, "static")
		}
	}
	check := block(t, block(t, group, "service"), "check")
	if str(t, check, "path") != "/readyz" || str(t, check, "port") != "metrics" {
		t.Errorf("service check %s on port %s, want /readyz on metrics", str(t, check, "path"), str(t, check, "port"))
	}

	task := block(t, group, "task", "veloflux")
	shutdownDelay := dur(t, task, "shutdown_delay")
	killTimeout := dur(t, task, "kill_timeout")
	if str(t, task, "kill_signal") != "SIGTERM" {
		t.Errorf("kill_signal %q, want SIGTERM (VeloFlux drains on it)", str(t, task, "kill_signal"))
	}
	if shutdownDelay <= 0 {
		t.Error("no shutdown_delay: clients see the node leave Consul only as it stops")
	}

	var secretsTmpl, configTmpl string
	for _, b := range task.Blocks {
		if b.Type != "template" {
			continue
		}
		switch dest := str(t, b.Body, "destination"); dest {
		case "secrets/veloflux.env":
			secretsTmpl = str(t, b.Body, "data")
			if !boolean(t, b.Body, "env") {
				t.Error("the secrets template is not read as environment (env = true)")
			}
		case "local/config.yaml":
			configTmpl = str(t, b.Body, "data")
			if str(t, b.Body, "change_mode") != "signal" || str(t, b.Body, "change_signal") != "SIGHUP" {
				t.Error("a changed config must reload VeloFlux with SIGHUP")
			}
		default:
			t.Errorf("unexpected template destination %s", dest)
		}
	}
	// The image is a job variable, so an upgrade is `nomad job run -var image=...`.
	f, _ := hclparse.NewParser().ParseHCLFile("../nomad/veloflux.nomad.hcl")
	if v := block(t, f.Body.(*hclsyntax.Body), "variable", "image"); str(t, v, "default") == "" {
		t.Error("variable image has no default")
	}
	if img, ok := block(t, task, "config").Attributes["image"]; !ok || len(img.Expr.Variables()) != 1 || img.Expr.Variables()[0].RootName() != "var" {
		t.Error("the task's image is not var.image")
	}
	if !strings.Contains(strings.Join(strs(t, block(t, task, "config"), "args"), " "), "-config /local/config.yaml") {
		t.Error("the task does not run with the rendered config")
	}
	if !strings.Contains(secretsTmpl, `nomadVar "nomad/jobs/veloflux"`) {
		t.Errorf("secrets do not come from Nomad variables:\n%s", secretsTmpl)
	}

	vars := map[string]string{"admin_pass": "pw", "gossip_key": "rCsvCPIVIeiMVBILzMUsLH7JBMO5U8FGxLhtTZjIWtE=", "sticky_secret": strings.Repeat("s", 48)}
	for _, dc := range dcs {
		t.Run(dc, func(t *testing.T) {
			nomadEnv := map[string]string{
				"NOMAD_DC": dc, "NOMAD_PORT_http": "8000", "NOMAD_PORT_metrics": "8080",
				"NOMAD_IP_gossip": "10.1.0.5", "NOMAD_PORT_gossip": "7946",
				"attr.unique.network.ip-address": "10.1.0.5", "node.unique.name": "edge-" + dc,
			}
			secrets := render(t, secretsTmpl, nomadEnv, vars)
			env := []string{"VF_ADMIN_USER=admin"}
			for line := range strings.Lines(secrets) {
				if line = strings.TrimSpace(line); line != "" {
					env = append(env, line)
				}
			}
			for _, want := range []string{"VF_ADMIN_PASS=pw", "VFX_GOSSIP_KEY=" + vars["gossip_key"], "VFX_STICKY_SECRET=" + vars["sticky_secret"]} {
				if !slices.Contains(env, want) {
					t.Errorf("rendered secrets %q lack %s", secrets, want)
				}
			}
			cfg := validate(t, render(t, configTmpl, nomadEnv, vars), env)

			if killTimeout <= cfg.Global.DrainTimeout {
				t.Errorf("kill_timeout %v must be above drain_timeout %v", killTimeout, cfg.Global.DrainTimeout)
			}
			if port(t, cfg.Global.BindAddress) != int(ports["http"]) || port(t, cfg.Global.MetricsAddress) != int(ports["metrics"]) || port(t, cfg.Cluster.BindAddress) != int(ports["gossip"]) {
				t.Errorf("listeners %s, %s, %s do not match the job's ports %v", cfg.Global.BindAddress, cfg.Global.MetricsAddress, cfg.Cluster.BindAddress, ports)
			}
			c := cfg.Discovery.Consul
			if !c.Enabled || c.Address != "10.1.0.5:8500" || c.Datacenter != dc {
				t.Errorf("Consul discovery %v at %s in %q, want the local agent in %s", c.Enabled, c.Address, c.Datacenter, dc)
			}
			others := slices.DeleteFunc(slices.Clone(dcs), func(d string) bool { return d == dc })
			if !slices.Equal(c.Datacenters, others) {
				t.Errorf("discovery.consul.datacenters %v, want the other datacenters %v", c.Datacenters, others)
			}
			if !c.Register.Enabled || !cfg.Cluster.JoinConsul || !cfg.Cluster.Enabled {
				t.Errorf("register %v, join_consul %v: nodes would not find each other", c.Register.Enabled, cfg.Cluster.JoinConsul)
			}
			if cfg.Geo.NodeRegion != dc {
				t.Errorf("geo.node_region %q, want %s", cfg.Geo.NodeRegion, dc)
			}
			// Datacenter names are not built-in regions: each needs its place.
			for _, d := range dcs {
				if !slices.ContainsFunc(cfg.Geo.Regions, func(r geo.Region) bool { return r.Name == d }) {
					t.Errorf("geo.regions %+v lacks the datacenter %s", cfg.Geo.Regions, d)
				}
			}
		})
	}
}

// TestNomadBackendJob checks the example backend: in the same datacenters, registered in
// Consul with the tags that route it, checked by Consul.
func TestNomadBackendJob(t *testing.T) {
	edge := parseJob(t, "../nomad/veloflux.nomad.hcl", "veloflux")
	job := parseJob(t, "../nomad/whoami.nomad.hcl", "whoami")
	if !slices.Equal(strs(t, job, "datacenters"), strs(t, edge, "datacenters")) {
		t.Errorf("datacenters %v, want VeloFlux's %v", strs(t, job, "datacenters"), strs(t, edge, "datacenters"))
	}
	svc := block(t, block(t, job, "group", "web"), "service")
	tags := strs(t, svc, "tags")
	for _, want := range []string{"veloflux.enable=true", "veloflux.route=/whoami"} {
		if !slices.Contains(tags, want) {
			t.Errorf("tags %v lack %s", tags, want)
		}
	}
	block(t, svc, "check")
}

func parseJob(t *testing.T, path, name string) *hclsyntax.Body {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(path)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", path, diags)
	}
	return block(t, f.Body.(*hclsyntax.Body), "job", name)
}

func block(t *testing.T, body *hclsyntax.Body, typ string, labels ...string) *hclsyntax.Body {
	t.Helper()
	for _, b := range body.Blocks {
		if b.Type == typ && slices.Equal(b.Labels, labels) {
			return b.Body
		}
	}
	t.Fatalf("no %s %v block", typ, labels)
	return nil
}

func value(t *testing.T, body *hclsyntax.Body, name string) cty.Value {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Fatalf("no attribute %s", name)
	}
	v, diags := a.Expr.Value(&hcl.EvalContext{})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", name, diags)
	}
	return v
}

func str(t *testing.T, body *hclsyntax.Body, name string) string {
	t.Helper()
	v := value(t, body, name)
	if v.Type() != cty.String {
		t.Fatalf("%s is %s, want a string", name, v.Type().FriendlyName())
	}
	return v.AsString()
}

func strs(t *testing.T, body *hclsyntax.Body, name string) []string {
	t.Helper()
	var out []string
	for _, v := range value(t, body, name).AsValueSlice() {
		out = append(out, v.AsString())
	}
	return out
}

func num(t *testing.T, body *hclsyntax.Body, name string) int64 {
	t.Helper()
	n, _ := value(t, body, name).AsBigFloat().Int64()
	return n
}

func boolean(t *testing.T, body *hclsyntax.Body, name string) bool {
	t.Helper()
	return value(t, body, name).True()
}

func dur(t *testing.T, body *hclsyntax.Body, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(str(t, body, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// render executes a Nomad template with the two functions these templates use: env (task
// environment, node attributes) and nomadVar.
func render(t *testing.T, text string, env, vars map[string]string) string {
	t.Helper()
	tmpl, err := template.New("nomad").Option("missingkey=error").Funcs(template.FuncMap{
		"env": func(k string) (string, error) {
			v, ok := env[k]
			if !ok {
				return "", errUnknown(k)
			}
			return v, nil
		},
		"nomadVar": func(path string) map[string]string { return vars },
	}).Parse(text)
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		t.Fatalf("template: %v", err)
	}
	return buf.String()
}

type errUnknown string

func (e errUnknown) Error() string { return "the test gives no value for " + string(e) }
