# Nomad system job: one VeloFlux per client node in two datacenters, each datacenter a region.
# Every node uses its host's Consul agent for discovery (services tagged veloflux.*), registers
# itself there with its gossip address, and joins the other nodes through those registrations.
# Secrets come from Nomad variables:
#   nomad var put nomad/jobs/veloflux admin_pass=... gossip_key="$(openssl rand -base64 32)" \
#     sticky_secret="$(openssl rand -base64 48)"
#   nomad job run deploy/nomad/veloflux.nomad.hcl
# The Consul datacenters are named like the Nomad ones (eu-central and us-east here). The image
# runs as non-root and listens on 8000; put the cloud load balancer's :80/:443 in front.
# docs/deployment.md walks through it, with the ports to open between the hosts.
# The image to run: nomad job run -var image=veloflux:1.2.0 (scripts/deploy.sh does).
variable "image" {
  type    = string
  default = "veloflux:latest"
}

job "veloflux" {
  type        = "system"
  datacenters = ["eu-central", "us-east"]

  # One node at a time: a replaced node drains first (kill_timeout below), and the next one
  # waits until the new node has been healthy for min_healthy_time.
  update {
    max_parallel     = 1
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    stagger          = "30s"
  }

  group "edge" {
    network {
      mode = "host"
      port "http"    { static = 8000 }
      port "metrics" { static = 8080 }
      port "gossip"  { static = 7946 }
    }

    # Nomad's own registration, checked on /readyz, which turns 503 the moment a drain starts.
    service {
      name     = "veloflux-edge"
      port     = "http"
      provider = "consul"
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
        image        = var.image
        network_mode = "host"
        args         = ["run", "-config", "/local/config.yaml"]
      }

      # Deregistered from Consul first, then shutdown_delay for clients to notice, then SIGTERM:
      # the node drains for drain_timeout (25s) and exits before kill_timeout (35s) ends.
      shutdown_delay = "5s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "35s"

      env {
        VF_ADMIN_USER = "admin"
      }

      # Secrets from Nomad variables, as files the task alone reads.
      template {
        destination = "secrets/veloflux.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
        {{ with nomadVar "nomad/jobs/veloflux" -}}
        VF_ADMIN_PASS={{ .admin_pass }}
        VFX_GOSSIP_KEY={{ .gossip_key }}
        VFX_STICKY_SECRET={{ .sticky_secret }}
        {{- end }}
        EOT
      }

      # A changed template re-renders the file and SIGHUP reloads it without a restart (keys
      # that need one are logged, see docs/configuration.md#reloading).
      template {
        destination   = "local/config.yaml"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
        global:
          bind_address: "0.0.0.0:{{ env "NOMAD_PORT_http" }}"
          metrics_address: "0.0.0.0:{{ env "NOMAD_PORT_metrics" }}"
          admin_address: "127.0.0.1:9000"
          drain_timeout: 25s
        discovery:
          consul:
            enabled: true
            address: "{{ env "attr.unique.network.ip-address" }}:8500"
            datacenter: "{{ env "NOMAD_DC" }}"
            # The other datacenter's instances join the same pools, as its region.
            datacenters: [{{ if eq (env "NOMAD_DC") "eu-central" }}"us-east"{{ else }}"eu-central"{{ end }}]
            register:
              enabled: true
              name: veloflux
              address: "{{ env "attr.unique.network.ip-address" }}"
        # Each datacenter is a region: a node prefers its own datacenter's backends. For routes
        # tagged veloflux.geo=nearest, add geo.database (a GeoLite2 City file, e.g. fetched
        # by an artifact block) and each client goes to its nearest region.
        geo:
          node_region: "{{ env "NOMAD_DC" }}"
          regions:
            - { name: eu-central, lat: 50.11, lon: 8.68 }
            - { name: us-east, lat: 39.04, lon: -77.49 }
        cluster:
          enabled: true
          name: "{{ env "node.unique.name" }}"
          bind_address: "{{ env "NOMAD_IP_gossip" }}:{{ env "NOMAD_PORT_gossip" }}"
          preset: wan
          join_consul: true
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
