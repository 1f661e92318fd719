//go:build !unix

package gateway

import (
	"errors"
	"net"
	"syscall"
)

// rawConn is nil here: without non-blocking writes every connection writes with its
// own goroutine.
func rawConn(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("gateway: no non-blocking socket writes on this platform")
}
