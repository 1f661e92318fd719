package gateway

import (
	"encoding/json"

	"github.com/liveroom/liveroom/fanout"
)

// command is every client command's fields (docs/protocol.md, "Client commands").
type command struct {
	ID    string  `json:"id"`
	Cmd   string  `json:"cmd"`
	Room  string  `json:"room"`
	Token string  `json:"token"`
	Since *uint64 `json:"since"`
	Text  string  `json:"text"`
	CID   string  `json:"cid"`

	// moderation (moderation.go)
	User    string `json:"user"`
	Seconds *int   `json:"seconds"`
	Seq     uint64 `json:"seq"`

	// flash sale (cmd_buy.go)
	Item   string `json:"item"`
	Resend bool   `json:"resend"` // the client got no answer to an earlier send of this cid

	// room state (statecmds.go)
	Count   int64           `json:"count"`
	Product json.RawMessage `json:"product"`
}

type reply struct {
	Type   string    `json:"type"`
	ID     string    `json:"id"`
	Result any       `json:"result,omitempty"`
	Error  *cmdError `json:"error,omitempty"`
}

type joinResult struct {
	Room     string      `json:"room"`
	You      fanout.User `json:"you"`
	Snapshot snapshot    `json:"snapshot"`
}

// snapshot is the room as a joining viewer first sees it (docs/protocol.md, "Snapshot").
type snapshot struct {
	// Chat: the recent lines, or with `since` exactly the events missed (chatjoin.go).
	Chat      []json.RawMessage `json:"chat"`
	Recovered bool              `json:"recovered,omitempty"`
	// SlowMode is the room's slow mode in seconds, 0 for off.
	SlowMode int `json:"slow_mode"`
	// Room state: pin, cheers, online, unique, live (fanout/state.go).
	*fanout.StateSnapshot
}

type chatResult struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

type pingResult struct {
	TS int64 `json:"ts"`
}

type empty struct{}

// parseCommand decodes one client frame. The returned id is set whenever the frame had
// one, so that even a malformed command's error can be matched by the client.
func parseCommand(data []byte) (command, *cmdError) {
	var c command
	if err := json.Unmarshal(data, &c); err != nil {
		// Try to recover the id for the error reply.
		var idOnly struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(data, &idOnly)
		return command{ID: idOnly.ID}, errorf(codeMalformed, "frame is not a JSON command object")
	}
	if c.Cmd == "" {
		return c, errorf(codeMalformed, "missing cmd")
	}
	if len(c.ID) > 64 {
		return command{}, errorf(codeBadRequest, "id longer than 64 characters")
	}
	return c, nil
}

func encodeReply(id string, result any, e *cmdError) []byte {
	b, err := json.Marshal(reply{Type: "reply", ID: id, Result: result, Error: e})
	if err != nil {
		b, _ = json.Marshal(reply{Type: "reply", ID: id, Error: errorf(codeInternal, "reply not encodable")})
	}
	return b
}
