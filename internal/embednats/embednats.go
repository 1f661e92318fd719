// Package embednats starts a NATS server with JetStream inside the current process.
//
// `liveroom serve` uses it so that one machine needs nothing else installed, and every
// package's tests use it (through Test) so that they talk to a real server on a random
// port instead of a mock.
package embednats

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says where the server listens and keeps its data.
type Config struct {
	// Listen is host:port for NATS clients. Port 0 or -1 picks a free port.
	// Empty means "127.0.0.1:-1".
	Listen string
	// StoreDir holds JetStream data. Required: JetStream is always on.
	StoreDir string
	// ServerName names the server in cluster views and logs; empty lets NATS choose.
	ServerName string
	// Logs turns on the server's own logging to stderr.
	Logs bool
	// JetStreamLimits are the server's JetStream limits (atomic batches in flight,
	// ...); zero fields keep the server's defaults.
	JetStreamLimits server.JSLimitOpts
}

// Start runs a NATS server with JetStream and waits until it takes connections.
func Start(cfg Config) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embednats: StoreDir is required")
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:-1"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embednats: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embednats: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      !cfg.Logs,
		// A room's fan-out is one subscription per gateway; a gateway is one client
		// that may be sent a lot. Give slow consumers room before NATS cuts them.
		MaxPending:      256 << 20,
		JetStreamLimits: cfg.JetStreamLimits,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embednats: %w", err)
	}
	if cfg.Logs {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embednats: server not ready after 10s")
	}
	return s, nil
}

// Test starts a server on a random loopback port with data in a temporary folder, and
// shuts it down when the test ends.
func Test(tb testing.TB) *server.Server {
	tb.Helper()
	return TestWith(tb, Config{})
}

// TestWith is Test with cfg (its StoreDir, if empty, a temporary folder).
func TestWith(tb testing.TB, cfg Config) *server.Server {
	tb.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = tb.TempDir()
	}
	s, err := Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
