package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed paths and identity.
const (
	binaryPath = "/usr/local/bin/veloflux"
	configPath = "/etc/veloflux/config.yaml"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	// uid and gid 65532, "nonroot", as in the distroless images the Dockerfile uses, so a
	// volume prepared for one works with the other.
	nonrootID = 65532
	user      = "65532:65532"
)

// ExposedPorts: proxy, TLS proxy, metrics and health, admin, gossip (TCP and UDP), as in
// examples/container.yaml and the cluster defaults.
var exposedPorts = []string{"8000/tcp", "8443/tcp", "8443/udp", "8080/tcp", "9000/tcp", "7946/tcp", "7946/udp"}

// Spec is what goes into the image.
type Spec struct {
	Binary   []byte    // the static veloflux binary
	Config   []byte    // the default configuration, at configPath
	CACerts  []byte    // PEM bundle of trusted CAs, at caPath
	Version  string    // image version label and tag
	Revision string    // source revision label; "" leaves it out
	Created  time.Time // image and file times, so the same inputs give the same image
	Arch     string    // GOARCH of Binary
}

// Build assembles the image: one layer on an empty base, running as the non-root user.
func Build(s Spec) (v1.Image, error) {
	layerTar, err := rootfs(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: s.Created}, CreatedBy: "tools/image: veloflux " + s.Version, Comment: "static binary, CA certificates, non-root user"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = s.Arch
	cf.OS = "linux"
	cf.Created = v1.Time{Time: s.Created}
	ports := map[string]struct{}{}
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	labels := map[string]string{
		"org.opencontainers.image.title":         "VeloFlux",
		"org.opencontainers.image.description":   "Edge proxy and global load balancer",
		"org.opencontainers.image.version":       s.Version,
		"org.opencontainers.image.source":        "https://github.com/veloflux/veloflux",
		"org.opencontainers.image.documentation": "https://github.com/veloflux/veloflux/blob/main/docs/deployment.md",
		"org.opencontainers.image.created":       s.Created.UTC().Format(time.RFC3339),
	}
	if s.Revision != "" {
		labels["org.opencontainers.image.revision"] = s.Revision
	}
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   []string{binaryPath},
		Cmd:          []string{"run"},
		Env:          []string{"PATH=/usr/local/bin", "VFX_CONFIG=" + configPath},
		WorkingDir:   "/",
		ExposedPorts: ports,
		Labels:       labels,
		StopSignal:   "SIGTERM",
		// The image has no shell: the binary checks its own /readyz.
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", binaryPath, "health"},
			Interval:    10 * time.Second,
			Timeout:     5 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer: the binary, the default configuration, CA certificates, and the
// passwd and group files that name the non-root user.
func rootfs(s Spec) ([]byte, error) {
	if len(s.Binary) == 0 || len(s.Config) == 0 || len(s.CACerts) == 0 {
		return nil, fmt.Errorf("binary, config and CA certificates are all required")
	}
	type entry struct {
		name string
		mode int64
		uid  int
		data []byte
		dir  bool
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootID, nonrootID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootID)
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caPath[1:], mode: 0o644, data: s.CACerts},
		{name: "etc/veloflux/", mode: 0o755, dir: true},
		{name: configPath[1:], mode: 0o644, data: s.Config},
		{name: "etc/veloflux/certs/", mode: 0o750, uid: nonrootID, dir: true},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: nonrootID, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: binaryPath[1:], mode: 0o755, data: s.Binary},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: "var/lib/veloflux/", mode: 0o750, uid: nonrootID, dir: true},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: s.Created,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as an OCI image layout in a tar archive, tagged tag
// (e.g. "veloflux:1.2.0"), with the manifest.json that `docker load` reads beside it, as
// `docker save` has written since Docker 25: `docker load`, `podman load` and
// `skopeo copy oci-archive:` all read it.
func WriteTarball(img v1.Image, tag, out string) error {
	dir, err := os.MkdirTemp("", "veloflux-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          "docker.io/library/" + tag,
		"org.opencontainers.image.ref.name": refName(tag),
	})); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		layerPaths = append(layerPaths, "blobs/sha256/"+d.Hex)
	}
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   "blobs/sha256/" + cfgName.Hex,
		"RepoTags": []string{tag},
		"Layers":   layerPaths,
	}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return err
	}
	return tarDir(dir, out)
}

// refName is the tag part of name:tag, the reference OCI tools expect in ref.name.
func refName(tag string) string {
	for i := len(tag) - 1; i >= 0 && tag[i] != '/'; i-- {
		if tag[i] == ':' {
			return tag[i+1:]
		}
	}
	return "latest"
}

// tarDir archives the files under dir, sorted, to out (written through a temporary file, so a
// failed build leaves no half tarball).
func tarDir(dir, out string) error {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, path := range files {
		rel, _ := filepath.Rel(dir, path)
		data, err := os.ReadFile(path)
		if err != nil {
			f.Close()
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
