// Package gateway owns the decoders of API-gateway access logs: today Kong's
// log-plugin JSON (format "kong", written by file-log, http-log, tcp-log and
// the other log plugins), in which the caller is named by the credential or
// consumer that Kong authenticated.
package gateway
