# VeloFlux container: a static binary on a distroless base, running as non-root.
# Build: docker build -t veloflux:dev .
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
# 8000 proxy, 8080 metrics/health, 9000 admin (needs VF_ADMIN_USER/VF_ADMIN_PASS to bind beyond loopback)
EXPOSE 8000 8080 9000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/veloflux"]
CMD ["run"]
