package fanout

import "errors"

// NATS subjects and JetStream names. A room name is a single subject token.
const (
	chatStream       = "LR_CHAT"
	chatSubjectAll   = "lr.chat.*"
	chatRepublishDst = "lr.ev.{{wildcard(1)}}.chat"
)

func chatSubject(room string) string       { return "lr.chat." + room }
func roomEventsSubject(room string) string { return "lr.ev." + room + ".>" }

// ErrBadRoom is returned for room names that are not 1–64 characters of [A-Za-z0-9_-].
var ErrBadRoom = errors.New("fanout: room must be 1-64 characters of A-Z a-z 0-9 _ -")

// ValidRoom reports whether room is a valid room name: it must be usable as one NATS
// subject token and in a URL path without escaping.
func ValidRoom(room string) bool {
	if len(room) == 0 || len(room) > 64 {
		return false
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
