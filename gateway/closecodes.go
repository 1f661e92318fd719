package gateway

import (
	"strconv"

	"github.com/coder/websocket"
)

// Close codes: the one table that docs/protocol.md, the JS client and the load
// generator follow.
const (
	CloseNormal      websocket.StatusCode = 1000
	CloseTooBig      websocket.StatusCode = 1009
	CloseRestart     websocket.StatusCode = 4001
	CloseTooSlow     websocket.StatusCode = 4002
	CloseAuthExpired websocket.StatusCode = 4003
	CloseBanned      websocket.StatusCode = 4004
	ClosePolicy      websocket.StatusCode = 4005
	CloseIdle        websocket.StatusCode = 4007
	// closeGone is not sent: it labels connections that ended without a close
	// handshake (the peer vanished or the socket failed).
	closeGone websocket.StatusCode = 1006
)

// closeInfo says what a close code is called and whether the client should reconnect.
type closeInfo struct {
	name      string
	reconnect bool
}

var closeCodes = map[websocket.StatusCode]closeInfo{
	CloseNormal:      {"normal", false},
	CloseTooBig:      {"too_big", false},
	CloseRestart:     {"restart", true},
	CloseTooSlow:     {"too_slow", true},
	CloseAuthExpired: {"auth_expired", true},
	CloseBanned:      {"banned", false},
	ClosePolicy:      {"policy", false},
	CloseIdle:        {"idle", true},
	closeGone:        {"gone", true},
}

// ShouldReconnect reports whether a client closed with code should reconnect.
func ShouldReconnect(code websocket.StatusCode) bool {
	info, ok := closeCodes[code]
	return !ok || info.reconnect
}

func closeLabel(code websocket.StatusCode) string {
	return strconv.Itoa(int(code))
}
