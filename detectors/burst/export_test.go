package burst

// Tail is tail, for tests.
var Tail = tail
