package main

import (
	"fmt"
	"os"
	"strings"
)

// secretFileVars are the secrets that may come from a file, as Docker and Swarm secrets and
// Nomad templates deliver them: VFX_GOSSIP_KEY_FILE=/run/secrets/gossip-key stands for
// VFX_GOSSIP_KEY holding that file's content.
var secretFileVars = []string{"VFX_GOSSIP_KEY", "VFX_STICKY_SECRET"}

// expandSecretFiles replaces each NAME_FILE of secretFileVars in environ by NAME set to the
// file's content without surrounding whitespace, so the configuration loader sees only the
// variables it knows. Setting both NAME and NAME_FILE, or naming an unreadable or empty file,
// is an error: a node must not start with a secret other than the one meant.
func expandSecretFiles(environ []string) ([]string, error) {
	out := make([]string, 0, len(environ))
	var problems []string
	files := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && isSecretFileVar(base) {
			files[base] = value
			continue
		}
		out = append(out, kv)
	}
	for _, base := range secretFileVars {
		path, ok := files[base]
		if !ok {
			continue
		}
		if getenv(environ, base) != "" {
			problems = append(problems, fmt.Sprintf("%s_FILE: %s is set too; set one of them", base, base))
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s_FILE: %v", base, err))
			continue
		}
		secret := strings.TrimSpace(string(b))
		if secret == "" {
			problems = append(problems, fmt.Sprintf("%s_FILE: %s is empty", base, path))
			continue
		}
		out = append(out, base+"="+secret)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return out, nil
}

func isSecretFileVar(name string) bool {
	for _, v := range secretFileVars {
		if v == name {
			return true
		}
	}
	return false
}
