# Nomad job: one VeloFlux per client node (system job), host networking on static ports,
# configuration rendered from a template and the admin password from Nomad variables.
# The image runs as non-root, so it listens on 8000; put the cloud load balancer's :80/:443 in front.
#   nomad var put nomad/jobs/veloflux admin_pass=...
#   nomad job run deploy/nomad/veloflux.nomad.hcl
job "veloflux" {
  type = "system"

  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "2m"
    auto_revert      = true
  }

  group "edge" {
    network {
      port "http"    { static = 8000 }
      port "metrics" { static = 8080 }
    }

    service {
      name = "veloflux"
      port = "http"
      check {
        name     = "ready"
        type     = "http"
        port     = "metrics"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "veloflux" {
      driver = "docker"

      config {
        image        = "veloflux:latest"
        network_mode = "host"
        args         = ["run", "-config", "/local/config.yaml"]
      }

      # Longer than global.drain_timeout: SIGTERM drains, then the task exits by itself.
      kill_signal  = "SIGTERM"
      kill_timeout = "35s"

      env {
        VFX_LOG_LEVEL = "info"
        VF_ADMIN_USER = "admin"
      }

      template {
        destination = "secrets/admin.env"
        env         = true
        data        = <<-EOT
        VF_ADMIN_PASS={{ with nomadVar "nomad/jobs/veloflux" }}{{ .admin_pass }}{{ end }}
        EOT
      }

      # A changed template re-renders the file; VeloFlux sees the change and reloads
      # without a restart (change_mode = "noop"), or on SIGHUP with change_mode = "signal".
      template {
        destination = "local/config.yaml"
        change_mode = "signal"
        change_signal = "SIGHUP"
        data        = <<-EOT
        global:
          bind_address: "0.0.0.0:{{ env "NOMAD_PORT_http" }}"
          metrics_address: "0.0.0.0:{{ env "NOMAD_PORT_metrics" }}"
          admin_address: "127.0.0.1:9000"
          drain_timeout: 25s
        pools: []
        routes: []
        EOT
      }

      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
