// Package deploy holds nhisentry's deployment files: the container image
// (Dockerfile), a compose stack for a laptop, plain Kubernetes manifests, a
// Helm chart, a Grafana dashboard and Prometheus alerting rules. It has no
// code; its tests check the files, because most of them cannot run where the
// tests do (deploy/README.md says what is checked and how).
package deploy
