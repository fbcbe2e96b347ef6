// Command image builds VeloFlux's container image without a container engine: the static
// binary, the default configuration and the CA certificates on an empty base, running as the
// non-root user 65532, written as an OCI image tarball that `docker load` reads. `make image`
// runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	binary := flag.String("binary", "", "static veloflux binary (required)")
	config := flag.String("config", "", "default configuration baked in at /etc/veloflux/config.yaml (required)")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates")
	version := flag.String("version", "dev", "version label, and the tag veloflux:VERSION")
	revision := flag.String("revision", "", "source revision label")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH the binary was built for")
	out := flag.String("out", "veloflux-image.tar", "where to write the tarball")
	flag.Parse()
	if err := run(*binary, *config, *ca, *version, *revision, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, config, ca, version, revision, arch, out string) error {
	if binary == "" || config == "" {
		return fmt.Errorf("-binary and -config are required")
	}
	s := Spec{Version: version, Revision: revision, Arch: arch, Created: created()}
	var err error
	if s.Binary, err = os.ReadFile(binary); err != nil {
		return err
	}
	if s.Config, err = os.ReadFile(config); err != nil {
		return err
	}
	if s.CACerts, err = os.ReadFile(ca); err != nil {
		return fmt.Errorf("%w (Debian: apt-get install ca-certificates)", err)
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	if err := WriteTarball(img, "veloflux:"+version, out); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: veloflux:%s, %.1f MB\n", out, version, float64(st.Size())/1e6)
	return nil
}

// created is SOURCE_DATE_EPOCH when set (the Makefile sets the commit time), so that one
// commit always gives the same image; else now.
func created() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}
