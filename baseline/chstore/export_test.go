package chstore

// BucketSQL exposes the bucket expression to the table-driven test that
// checks it against baseline.Bucket on the server.
var BucketSQL = bucketSQL

// SetChunks shrinks the chunk limits so a test with a handful of identities
// crosses chunk boundaries; the returned func restores them.
func SetChunks(ids, bytes int) (restore func()) {
	oldIDs, oldBytes := chunkIDs, chunkBytes
	chunkIDs, chunkBytes = ids, bytes
	return func() { chunkIDs, chunkBytes = oldIDs, oldBytes }
}
