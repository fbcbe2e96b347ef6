package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// maxImageBytes bounds the tarball: a static binary and a few small files.
const maxImageBytes = 25 << 20

// TestImage builds the image as `make image` does, from the real static binary of this
// repository, and reads the tarball back as an OCI layout: its config (entrypoint, user,
// ports, labels, health check), its files, the manifest.json `docker load` reads, its size,
// and that the baked-in configuration passes `veloflux validate`.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "veloflux")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test", "-o", bin, "./cmd/velofluxlb")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "veloflux-image.tar")
	if err := run(bin, "../../examples/container.yaml", "/etc/ssl/certs/ca-certificates.crt", "test", "abc123", "amd64", out); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image tarball: %d bytes (%.1f MB)", st.Size(), float64(st.Size())/1e6)
	if st.Size() >= maxImageBytes {
		t.Errorf("image is %d bytes, want under %d", st.Size(), maxImageBytes)
	}

	skopeoReads(t, out, dir)

	oci := filepath.Join(dir, "oci")
	untar(t, out, oci)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	readJSON(t, filepath.Join(oci, "manifest.json"), &manifest)
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{"veloflux:test"}) || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %+v, want one image tagged veloflux:test with one layer", manifest)
	}
	for _, p := range append([]string{manifest[0].Config}, manifest[0].Layers...) {
		if _, err := os.Stat(filepath.Join(oci, p)); err != nil {
			t.Errorf("manifest.json names %s: %v", p, err)
		}
	}

	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	if got := im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "test" {
		t.Errorf("ref.name annotation %q, want test", got)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"os/arch", cf.OS == "linux" && cf.Architecture == "amd64", cf.OS + "/" + cf.Architecture},
		{"user is non-root", c.User == "65532:65532", c.User},
		{"entrypoint", slices.Equal(c.Entrypoint, []string{"/usr/local/bin/veloflux"}), c.Entrypoint},
		{"cmd", slices.Equal(c.Cmd, []string{"run"}), c.Cmd},
		{"env names the config", slices.Contains(c.Env, "VFX_CONFIG=/etc/veloflux/config.yaml"), c.Env},
		{"stop signal", c.StopSignal == "SIGTERM", c.StopSignal},
		{"health check runs veloflux health", c.Healthcheck != nil && slices.Equal(c.Healthcheck.Test, []string{"CMD", "/usr/local/bin/veloflux", "health"}), c.Healthcheck},
		{"version label", c.Labels["org.opencontainers.image.version"] == "test", c.Labels},
		{"revision label", c.Labels["org.opencontainers.image.revision"] == "abc123", c.Labels},
		{"title label", c.Labels["org.opencontainers.image.title"] == "VeloFlux", c.Labels},
	}
	for _, p := range []string{"8000/tcp", "8080/tcp", "9000/tcp", "7946/tcp", "7946/udp"} {
		_, ok := c.ExposedPorts[p]
		checks = append(checks, struct {
			name string
			ok   bool
			got  any
		}{"exposes " + p, ok, c.ExposedPorts})
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("%s: got %v", ck.name, ck.got)
		}
	}

	files := layerFiles(t, img)
	binData, _ := os.ReadFile(bin)
	want := map[string]struct {
		mode int64
		uid  int
		data []byte
	}{
		"usr/local/bin/veloflux":            {0o755, 0, binData},
		"etc/veloflux/config.yaml":          {0o644, 0, mustRead(t, "../../examples/container.yaml")},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, mustRead(t, "/etc/ssl/certs/ca-certificates.crt")},
		"var/lib/veloflux":                  {0o750, 65532, nil},
		"tmp":                               {0o1777, 0, nil},
	}
	for name, w := range want {
		f, ok := files[name]
		if !ok {
			t.Errorf("%s missing from the layer", name)
			continue
		}
		if f.hdr.Mode != w.mode || f.hdr.Uid != w.uid {
			t.Errorf("%s: mode %o uid %d, want %o uid %d", name, f.hdr.Mode, f.hdr.Uid, w.mode, w.uid)
		}
		if w.data != nil && !bytes.Equal(f.data, w.data) {
			t.Errorf("%s: %d bytes differ from the source's %d", name, len(f.data), len(w.data))
		}
	}
	if p := string(files["etc/passwd"].data); !strings.Contains(p, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", p)
	}
	if !strings.Contains(string(files["etc/ssl/certs/ca-certificates.crt"].data), "BEGIN CERTIFICATE") {
		t.Error("the CA bundle holds no certificate")
	}

	// The configuration baked into the image is one the image's own binary accepts.
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, files["etc/veloflux/config.yaml"].data, 0o600); err != nil {
		t.Fatal(err)
	}
	extracted := filepath.Join(dir, "veloflux-from-image")
	if err := os.WriteFile(extracted, files["usr/local/bin/veloflux"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	v := exec.Command(extracted, "validate", "-config", cfgFile)
	v.Env = []string{}
	if out, err := v.CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
		t.Errorf("veloflux validate of the baked-in config: %v\n%s", err, out)
	}
}

// TestImageReproducible builds twice from the same inputs and time: the digests match, so
// a rebuild of one commit is the same image.
func TestImageReproducible(t *testing.T) {
	s := Spec{Binary: []byte("#!binary"), Config: []byte("global: {}\n"), CACerts: []byte("pem"), Version: "1", Arch: "amd64", Created: time.Unix(1700000000, 0).UTC()}
	var digests []v1.Hash
	for range 2 {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds gave %s and %s", digests[0], digests[1])
	}
	s.Version = "2"
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d == digests[0] {
		t.Fatal("another version gave the same digest")
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = file{h, data}
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("tar entry %q leaves the directory", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(mustRead(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// skopeoReads copies the tarball with skopeo (containers/image, the library of podman and
// CRI-O) as a Docker archive, the way `docker load` reads it, and as an OCI archive: each copy
// reads every blob and checks its digest, and the tag is the one given.
func skopeoReads(t *testing.T, tarball, dir string) {
	t.Helper()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("skopeo missing in CI: make image-check installs it")
		}
		t.Log("skopeo missing (make image-check installs it): the tarball is read by this test alone")
		return
	}
	for _, src := range []string{"docker-archive:" + tarball, "oci-archive:" + tarball} {
		dst := filepath.Join(dir, "copy-"+strings.SplitN(src, ":", 2)[0])
		if out, err := exec.Command(skopeo, "copy", "--quiet", src, "dir:"+dst).CombinedOutput(); err != nil {
			t.Errorf("skopeo copy %s: %v\n%s", src, err, out)
		}
	}
	// Found by its tag, as `docker load` will name it.
	out, err := exec.Command(skopeo, "inspect", "--format", "{{.Architecture}}", "docker-archive:"+tarball+":veloflux:test").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "amd64" {
		t.Errorf("skopeo inspect docker-archive:...:veloflux:test: %v\n%s", err, out)
	}
}
