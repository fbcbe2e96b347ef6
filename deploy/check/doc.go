// Package check holds the tests of the deployment files: docker-compose.yml at the root of the
// repository, the Swarm stack in deploy/swarm and the Nomad jobs in deploy/nomad. Each file is
// read by the loader of the tool that runs it (compose-go for Compose and Swarm, HCL for
// Nomad), checked for what a clustered VeloFlux needs, and the VeloFlux configuration it
// carries or renders is checked by `veloflux validate`, built from this repository.
package check
