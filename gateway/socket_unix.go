//go:build unix

package gateway

import (
	"errors"
	"net"
	"syscall"
)

// rawConn is nc's file descriptor access if it is a plain socket.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// tryWrite writes as much of p as the socket takes now, without waiting for it to
// drain.
func tryWrite(raw syscall.RawConn, p []byte) (n int, err error) {
	var werr error
	err = raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case errors.Is(e, syscall.EINTR):
			case errors.Is(e, syscall.EAGAIN):
				return true
			case e != nil:
				werr = e
				return true
			case m == 0:
				werr = syscall.EPIPE
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}
