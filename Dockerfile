# VeloFlux container: a static binary on a distroless base, running as non-root.
# Build: docker build -t veloflux:dev .
# Without Docker, `make image` builds the same binary into an OCI image tarball with the same
# user, entrypoint, ports and health check (docker load -i veloflux-image.tar).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/veloflux ./cmd/velofluxlb

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/veloflux /usr/local/bin/veloflux
COPY examples/container.yaml /etc/veloflux/config.yaml
# 8000 proxy, 8443 TLS proxy (TCP, and UDP for HTTP/3), 8080 metrics/health, 9000 admin (needs
# VF_ADMIN_USER/VF_ADMIN_PASS to bind beyond loopback), 7946 gossip (TCP and UDP)
EXPOSE 8000 8443 8443/udp 8080 9000 7946 7946/udp
ENV VFX_CONFIG=/etc/veloflux/config.yaml
# No shell in the image: the binary asks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/veloflux", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/veloflux"]
CMD ["run"]
