package check

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsMatchFiles checks the commands that README.md and docs/deployment.md give against
// the files they are about: the Compose credentials are the env file's, every Swarm secret
// and config the stack names is created by the documented commands, and the Nomad variables
// put by the documented command are the ones the job's template reads.
func TestDocsMatchFiles(t *testing.T) {
	deployment := read(t, "../../docs/deployment.md")
	readme := read(t, "../../README.md")

	env := read(t, "../compose/veloflux.env")
	user := regexp.MustCompile(`(?m)^VF_ADMIN_USER=(.*)$`).FindStringSubmatch(env)
	pass := regexp.MustCompile(`(?m)^VF_ADMIN_PASS=(.*)$`).FindStringSubmatch(env)
	if user == nil || pass == nil {
		t.Fatal("the env file sets no admin credentials")
	}
	creds := "-u " + user[1] + ":" + pass[1] + " "
	for name, doc := range map[string]string{"README.md": readme, "docs/deployment.md": deployment, "docker-compose.yml": read(t, "../../docker-compose.yml")} {
		if !strings.Contains(doc, creds) {
			t.Errorf("%s does not use the env file's credentials (%q)", name, creds)
		}
	}

	p := loadCompose(t, "../swarm/veloflux-stack.yml", nil)
	for name := range p.Secrets {
		if !strings.Contains(deployment, "docker secret create "+name+" ") {
			t.Errorf("docs/deployment.md does not create the secret %s", name)
		}
	}
	for _, c := range p.Configs {
		if !strings.Contains(deployment, "docker config create "+c.Name+" deploy/swarm/config.yaml") {
			t.Errorf("docs/deployment.md does not create the config %s", c.Name)
		}
	}

	put := regexp.MustCompile(`nomad var put nomad/jobs/veloflux(?:[^\n\\]|\\\n)*`).FindString(deployment)
	job := read(t, "../nomad/veloflux.nomad.hcl")
	keys := regexp.MustCompile(`\{\{ \.([a-z_]+) \}\}`).FindAllStringSubmatch(job, -1)
	if put == "" || len(keys) == 0 {
		t.Fatalf("no nomad var put in docs/deployment.md (%q) or no variable read by the job (%v)", put, keys)
	}
	for _, k := range keys {
		if !strings.Contains(put, k[1]+"=") {
			t.Errorf("docs/deployment.md's %q does not put %s, which the job reads", put, k[1])
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
