// Package gateway owns the decoders of API-gateway and reverse-proxy access
// logs:
//
//   - "kong" (New): Kong's log-plugin JSON, written by file-log, http-log,
//     tcp-log and the other log plugins, in which the caller is named by the
//     credential or consumer that Kong authenticated;
//   - "apigateway" (NewAPIGateway): AWS API Gateway access logs in JSON
//     (REST, HTTP and WebSocket APIs), bare, in a collector's "message"
//     wrapper or in a CloudWatch Logs subscription payload; the caller is the
//     API key id, the IAM principal or the authorizer's principal;
//   - "nginx" (NewNGINX): NGINX text access logs (combined, main, Common Log
//     Format, with or without a $host prefix) and ingress-nginx's
//     upstreaminfo format;
//   - "nginx_json" (NewNGINXJSON): NGINX access logs written as JSON with
//     escape=json, keyed by variable name.
//
// NGINX names a caller only by the user name of a Basic Authorization header
// ($remote_user, a claim NGINX may not have checked) and otherwise by the
// client address.
package gateway
