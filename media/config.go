package media

import (
	"log/slog"
	"strings"
	"time"
)

// Config sets up a media Server. The zero value serves on a free UDP port on every
// non-loopback address, requires a token for viewers, and has no secret (every request
// is refused until Secret is set): set Secret at least.
type Config struct {
	// Secret checks the Bearer tokens of WHIP and WHEP requests (auth.Verify). The same
	// secret as the gateway's. Empty refuses every token.
	Secret []byte

	// AllowAnonymous lets WHEP viewers without a token watch any live room. Default
	// false: a viewer needs a token whose rooms include the room.
	AllowAnonymous bool

	// UDPPort is the one UDP port that carries all ICE, DTLS and SRTP traffic (UDP
	// mux). Zero picks a free port; Server.UDPPort reports it.
	UDPPort int

	// ICEAddresses are the local IP addresses the UDP port is bound on and offered as
	// host candidates. Empty means every up, non-loopback interface address. Loopback
	// addresses (127.0.0.1, ::1) are offered only when listed here; tests list
	// exactly "127.0.0.1" so no packet leaves the machine.
	ICEAddresses []string

	// PublicIPs replace the host candidates' addresses in SDP answers (NAT 1:1), for a
	// server behind a NAT that forwards UDPPort to it. Empty offers the local addresses.
	PublicIPs []string

	// KeyframeInterval is the shortest time between two keyframe requests (PLI) sent
	// to one publisher track; requests from joining viewers inside it are merged into
	// one. Default 500ms.
	KeyframeInterval time.Duration

	// TrackWait is how long a broadcast waits, after its first track's first packet,
	// for the other tracks its WHIP offer announced before the room goes live anyway.
	// Until the room is live, its status is not published and WHEP requests wait, so
	// that a viewer gets every track (a browser's audio starts ~0.1-0.3 s before its
	// video). Default 2s.
	TrackWait time.Duration

	// BufferPackets is how many packets each publisher track keeps for
	// retransmissions, rounded up to a power of two. Default 1024 (about 4 s of a
	// 1.8 Mbit/s video).
	BufferPackets int

	// GatherTimeout bounds how long an offer waits for ICE gathering before the
	// answer is sent (non-trickle ICE). Default 5s.
	GatherTimeout time.Duration

	// LiveRefresh is how often a live room's status is published again, so that a
	// status left behind by a crashed media server expires (the stream keeps a
	// status for 3×LiveRefresh). Default 30s.
	LiveRefresh time.Duration

	// PublicURL is this server's base URL as other media nodes reach it (scheme, host,
	// port: "http://10.0.0.5:8081"; its WHEP endpoint is PublicURL+"/whep/{room}").
	// A room whose host publishes here is announced with it in LR_LIVE
	// (OriginStatus), so that other nodes can relay it (relay.go). Empty: rooms
	// published here are not relayed by other nodes; this node still relays rooms
	// published elsewhere.
	PublicURL string

	// RelayIdle is how long an edge keeps its upstream session to a room's origin
	// after the room's last local viewer left. Default 10s.
	RelayIdle time.Duration

	// Replicas is the number of replicas of the LR_LIVE stream. Default 1.
	Replicas int

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 500 * time.Millisecond
	}
	if c.TrackWait <= 0 {
		c.TrackWait = 2 * time.Second
	}
	if c.BufferPackets <= 0 {
		c.BufferPackets = 1024
	}
	n := 1
	for n < c.BufferPackets {
		n <<= 1
	}
	c.BufferPackets = n
	if c.GatherTimeout <= 0 {
		c.GatherTimeout = 5 * time.Second
	}
	if c.LiveRefresh <= 0 {
		c.LiveRefresh = 30 * time.Second
	}
	if c.RelayIdle <= 0 {
		c.RelayIdle = 10 * time.Second
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
