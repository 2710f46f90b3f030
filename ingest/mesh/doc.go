// Package mesh owns the decoders of service-mesh access logs:
//
//   - "envoy_json": Envoy, Istio sidecar and Envoy Gateway JSON access logs,
//     in which the caller is named by the peer certificate's SPIFFE URI SAN
//     when the mesh logs it;
//   - "envoy_text": Envoy's default text access-log format (also with
//     Ambassador's "ACCESS " prefix) and Istio's default text format;
//   - "ztunnel": Istio ambient mode's ztunnel L4 access logs, which name both
//     ends by SPIFFE ID;
//   - "linkerd_json" and "linkerd_text": Linkerd proxy HTTP access logs (the
//     json and apache forms), whose client identity maps to a SPIFFE ID.
//
// Every decoder strips container-runtime wrappers (ingest.Unwrap) first and
// turns each log line into one normalized event whose identity is the
// calling workload (or, when nothing names it, its source address) and whose
// target peer is the called workload.
package mesh
