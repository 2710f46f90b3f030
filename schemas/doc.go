// Package schemas owns the data that crosses every stage of nhisentry: the
// normalized Event that decoders produce, the Finding that detectors emit, and
// their stable JSON forms. It does no I/O. The ClickHouse layout of both lives
// in the migrations subpackage.
package schemas
