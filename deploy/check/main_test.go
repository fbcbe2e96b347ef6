package check

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/veloflux/veloflux/config"
)

// veloflux is the binary built from this repository by TestMain.
var veloflux string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-check-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	veloflux = filepath.Join(dir, "veloflux")
	build := exec.Command("go", "build", "-o", veloflux, "./cmd/velofluxlb")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadCompose reads a Compose or stack file as Docker Compose and `docker stack deploy` do,
// interpolating env (and nothing from the test's own environment).
func loadCompose(t *testing.T, file string, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: data}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("veloflux", true)
	})
	if err != nil {
		t.Fatalf("%s does not load: %v", file, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

// validate runs `veloflux validate` on yaml with environ, as the node would start, and returns
// the configuration VeloFlux's loader makes of it.
func validate(t *testing.T, yaml string, environ []string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(veloflux, "validate", "-config", path)
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("veloflux validate: %v\n%s%s\nconfig:\n%s", err, stdout.String(), stderr.String(), yaml)
	}
	// The loader reads variables, not the files that the command expands, so hand it what
	// the command read.
	cfg, err := config.Load(path, readFileSecrets(t, environ))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

func readFileSecrets(t *testing.T, environ []string) []string {
	t.Helper()
	var out []string
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && strings.HasPrefix(name, "VFX_") {
			b, err := os.ReadFile(value)
			if err != nil {
				t.Fatal(err)
			}
			kv = base + "=" + strings.TrimSpace(string(b))
		}
		out = append(out, kv)
	}
	return out
}

// environ turns a service's environment into os.Environ form.
func environ(env types.MappingWithEquals) []string {
	var out []string
	for k, v := range env {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	return out
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkHealthcheck: the image has no shell, so the check must run the binary itself.
func checkHealthcheck(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	want := []string{"CMD", "/usr/local/bin/veloflux", "health"}
	if s.HealthCheck == nil || strings.Join(s.HealthCheck.Test, " ") != strings.Join(want, " ") {
		t.Errorf("%s: healthcheck %v, want test %v", s.Name, s.HealthCheck, want)
	}
}

// checkGrace: the orchestrator's kill comes after drain_timeout, so a stopping node finishes
// its requests.
func checkGrace(t *testing.T, name string, grace *types.Duration, drain time.Duration) {
	t.Helper()
	if grace == nil || time.Duration(*grace) <= drain {
		t.Errorf("%s: stop_grace_period %v must be above drain_timeout %v", name, grace, drain)
	}
}

// checkConfigTarget: the command's -config names the file the config object is mounted at.
func checkConfigTarget(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	if len(s.Configs) != 1 {
		t.Fatalf("%s: %d configs, want 1", s.Name, len(s.Configs))
	}
	target := s.Configs[0].Target
	cmd := strings.Join(s.Command, " ")
	if !strings.Contains(cmd, "-config "+target) {
		t.Errorf("%s: command %q does not read the config at %s", s.Name, cmd, target)
	}
	return s.Configs[0].Source
}

func consulBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VELOFLUX_CONSUL_BIN")
	if bin == "" {
		bin = filepath.Join(os.Getenv("HOME"), ".cache/veloflux/consul-1.13.9")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Consul binary at %s (make consul)", bin)
		}
		t.Skipf("no Consul binary at %s (make consul)", bin)
	}
	return bin
}
