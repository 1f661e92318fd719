package gateway

import (
	"runtime"
	"time"

	"github.com/liveroom/liveroom/fanout"
)

// Config tunes a Gateway. The zero value of every field but Secret is a sensible
// default, documented on the field.
type Config struct {
	// Secret verifies tokens (HS256). Required.
	Secret []byte
	// AllowAnonymous lets a client join without a token, as a read-only viewer.
	// Default false (`liveroom serve` turns it on).
	AllowAnonymous bool
	// AllowedOrigins are host patterns (path.Match syntax, e.g. "shop.example.com",
	// "*.example.com") of cross-site pages allowed to open a WebSocket. Same-site pages
	// and clients that send no Origin are always allowed. Default: none.
	AllowedOrigins []string

	// MaxFrameBytes is the largest frame a client may send; larger closes with 1009.
	// Default 8 KiB.
	MaxFrameBytes int
	// MaxChatRunes is the longest chat line, in characters. Default 280.
	MaxChatRunes int
	// ChatRate is how many chat lines per second one user may send on one connection
	// (token bucket refill). Default 0.5.
	ChatRate float64
	// ChatBurst is the token bucket's size. Default 3.
	ChatBurst int
	// CheerRate is how many cheer taps per second one user is credited on one
	// connection (token bucket refill); taps above it are refused and counted.
	// Default 20.
	CheerRate float64
	// CheerBurst is the cheer token bucket's size. Default 2 × CheerRate.
	CheerBurst int
	// APIKey authorizes the shop backend's HTTP API (`Authorization: Bearer <key>`).
	// Default empty: the API is off.
	APIKey string
	// MaxRoomsPerConn is how many rooms one connection may have joined at once.
	// Default 4.
	MaxRoomsPerConn int
	// PolicyErrorLimit is how many malformed, unknown or bad commands a connection may
	// send before it is closed with 4005. Default 20.
	PolicyErrorLimit int

	// QueueBytes bounds each connection's outbound queue. Default 256 KiB.
	QueueBytes int
	// WriteTimeout is how long one socket write may take before the viewer is closed
	// as too slow. Default 10s.
	WriteTimeout time.Duration
	// Writers is how many goroutines write the rooms' frames to the sockets (the
	// writer pool, writerpool.go). Default 2×GOMAXPROCS, at least 4. Negative: no
	// pool, every connection writes with a goroutine of its own.
	Writers int
	// IdleTimeout closes a connection that has sent nothing for this long. Default 90s.
	IdleTimeout time.Duration
	// PingInterval is the mean time between WebSocket pings, jittered ±1/6 per
	// connection. Default 30s.
	PingInterval time.Duration
	// JoinWait is how long a join may wait for its room before it is answered
	// `unavailable` without doing the work: clients give up on a join after a few
	// seconds and reconnect, and a room must not work through joins nobody waits for.
	// Default 5s.
	JoinWait time.Duration
	// PublishTimeout bounds the wait for JetStream to store a chat line. Default 5s.
	PublishTimeout time.Duration
	// DrainPeriod is how long Shutdown spreads the reconnect close over, so that the
	// viewers do not all come back to the other gateways in the same second.
	// Default 10s.
	DrainPeriod time.Duration

	// Fanout tunes the room hub (tick, chat history, replicas).
	Fanout fanout.Config
	// Flash tunes the flash-sale engine (leases, press rate, order stream).
	Flash fanout.FlashConfig
}

func (c Config) withDefaults() Config {
	setDefault(&c.MaxFrameBytes, 8<<10)
	setDefault(&c.MaxChatRunes, 280)
	setDefault(&c.ChatRate, 0.5)
	setDefault(&c.ChatBurst, 3)
	setDefault(&c.CheerRate, 20)
	setDefault(&c.CheerBurst, int(2*c.CheerRate))
	setDefault(&c.MaxRoomsPerConn, 4)
	setDefault(&c.PolicyErrorLimit, 20)
	setDefault(&c.QueueBytes, 256<<10)
	setDefault(&c.WriteTimeout, 10*time.Second)
	if c.Writers == 0 {
		c.Writers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	setDefault(&c.IdleTimeout, 90*time.Second)
	setDefault(&c.PingInterval, 30*time.Second)
	setDefault(&c.PublishTimeout, 5*time.Second)
	setDefault(&c.JoinWait, 5*time.Second)
	setDefault(&c.DrainPeriod, 10*time.Second)
	return c
}

func setDefault[T int | float64 | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}
