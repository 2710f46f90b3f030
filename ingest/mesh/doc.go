// Package mesh owns the decoders of service-mesh access logs: today Envoy
// and Istio sidecar JSON access logs (format "envoy_json"), in which the
// caller is named by the peer certificate's SPIFFE URI SAN when the mesh
// logs it. It turns each log line into one normalized event whose identity
// is the calling workload and whose target peer is the called workload.
package mesh
