# Example backend: two instances per datacenter, registered in Consul with the tags that route
# them through every VeloFlux node: /whoami, prefix stripped, each node preferring the
# instances of its own datacenter.
#   nomad job run deploy/nomad/whoami.nomad.hcl
job "whoami" {
  type        = "service"
  datacenters = ["eu-central", "us-east"]

  group "web" {
    count = 4

    spread {
      attribute = "${node.datacenter}"
    }

    network {
      port "http" { to = 80 }
    }

    service {
      name     = "whoami"
      port     = "http"
      provider = "consul"
      tags = [
        "veloflux.enable=true",
        "veloflux.route=/whoami",
        "veloflux.strip_prefix=true",
        "veloflux.health.path=/health",
      ]
      check {
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "whoami" {
      driver = "docker"
      config {
        image = "traefik/whoami:v1.10"
        ports = ["http"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
