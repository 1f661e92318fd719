package gateway

import "time"

// Error codes sent in error replies (docs/protocol.md, "Error codes").
const (
	codeMalformed     = "malformed"
	codeUnknown       = "unknown_command"
	codeBadRequest    = "bad_request"
	codeTextTooLong   = "text_too_long"
	codeUnauthorized  = "unauthorized"
	codeTokenExpired  = "token_expired"
	codeForbidden     = "forbidden"
	codeNotJoined     = "not_joined"
	codeAlreadyJoined = "already_joined"
	codeTooManyRooms  = "too_many_rooms"
	codeRateLimited   = "rate_limited"
	codeUnavailable   = "unavailable"
	codeInternal      = "internal"
	codeMuted         = "muted"     // chat while muted (moderation.go)
	codeBanned        = "banned"    // join of a room the user is banned from
	codeSlowMode      = "slow_mode" // chat faster than the room's slow mode
	codeNoSale        = "no_sale"   // buy of an item with no flash sale (cmd_buy.go)
)

// errorCodes lists every code, so metrics can resolve their label children up front.
var errorCodes = []string{
	codeMalformed, codeUnknown, codeBadRequest, codeTextTooLong, codeUnauthorized,
	codeTokenExpired, codeForbidden, codeNotJoined, codeAlreadyJoined, codeTooManyRooms,
	codeRateLimited, codeUnavailable, codeInternal,
	codeMuted, codeBanned, codeSlowMode, codeNoSale,
}

// policyCodes are the errors that count towards closing an abusive connection.
func isPolicyError(code string) bool {
	return code == codeMalformed || code == codeUnknown || code == codeBadRequest
}

// cmdError is a command's failure, sent to the client as an error reply.
type cmdError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	RetryMS int64  `json:"retry_ms,omitempty"`
}

func (e *cmdError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, msg string) *cmdError { return &cmdError{Code: code, Message: msg} }

func rateLimited(msg string, retry time.Duration) *cmdError {
	return &cmdError{Code: codeRateLimited, Message: msg, RetryMS: retry.Milliseconds() + 1}
}
