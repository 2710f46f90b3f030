package kafkasrc

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"
)

// A commit lost with its connection, or refused for a passing reason, is
// sent again; one the group refused because it rebalanced, or on a closed
// reader, is not.
func TestRetriableCommitErrors(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read response: %w", io.EOF), true},
		{kafka.NotCoordinatorForGroup, true},
		{kafka.RequestTimedOut, true},
		{kafka.RebalanceInProgress, false},
		{kafka.IllegalGeneration, false},
		{kafka.UnknownMemberId, false},
		{io.ErrClosedPipe, false},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := retriable(tt.err); got != tt.want {
			t.Errorf("retriable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
