package gateway

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/liveroom/liveroom/fanout"
)

// Moderation commands (docs/protocol.md, "Moderation"): host and moderator tokens only,
// in a room the connection has joined. Bans, mutes and slow mode are stored in the KV
// bucket LR_MOD and reach every gateway; a delete is a tombstone in the room's chat.

const (
	maxMuteSeconds = 7 * 24 * 3600
	maxSlowSeconds = 3600
)

type muteResult struct {
	Until int64 `json:"until"` // unix ms; 0 when the mute was lifted
}

type slowModeResult struct {
	Seconds int `json:"seconds"`
}

func (c *conn) moderate(cmd command) (any, *cmdError) {
	if c.claims == nil || !c.claims.Role.Staff() {
		return nil, errorf(codeForbidden, cmd.Cmd+" is for hosts and moderators")
	}
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	needUser := cmd.Cmd == "mute" || cmd.Cmd == "ban" || cmd.Cmd == "unban"
	if needUser && (cmd.User == "" || len(cmd.User) > 64) {
		return nil, errorf(codeBadRequest, "user must be 1-64 characters")
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.PublishTimeout)
	defer cancel()
	h := c.g.hub
	var (
		res any = empty{}
		err error
	)
	switch cmd.Cmd {
	case "delete":
		if cmd.Seq == 0 {
			return nil, errorf(codeBadRequest, "seq is required")
		}
		var ack fanout.ChatAck
		ack, err = h.DeleteLine(ctx, cmd.Room, cmd.Seq, c.you)
		if errors.Is(err, fanout.ErrNoSuchLine) {
			return nil, errorf(codeBadRequest, "no chat line "+strconv.FormatUint(cmd.Seq, 10)+" in room "+cmd.Room)
		}
		res = chatResult(ack)
	case "mute":
		if cmd.Seconds == nil || *cmd.Seconds < 0 || *cmd.Seconds > maxMuteSeconds {
			return nil, errorf(codeBadRequest, "seconds must be 0-"+strconv.Itoa(maxMuteSeconds))
		}
		var until time.Time
		until, err = h.Mute(ctx, cmd.Room, cmd.User, time.Duration(*cmd.Seconds)*time.Second, c.you)
		if *cmd.Seconds == 0 {
			res = muteResult{}
		} else {
			res = muteResult{Until: until.UnixMilli()}
		}
	case "ban":
		err = h.Ban(ctx, cmd.Room, cmd.User, c.you)
	case "unban":
		err = h.Unban(ctx, cmd.Room, cmd.User)
	case "slow_mode":
		if cmd.Seconds == nil || *cmd.Seconds < 0 || *cmd.Seconds > maxSlowSeconds {
			return nil, errorf(codeBadRequest, "seconds must be 0-"+strconv.Itoa(maxSlowSeconds))
		}
		err = h.SetSlowMode(ctx, cmd.Room, *cmd.Seconds, c.you)
		res = slowModeResult{Seconds: *cmd.Seconds}
	}
	if err != nil {
		c.g.log.Warn("moderation failed", "cmd", cmd.Cmd, "room", cmd.Room, "err", err)
		return nil, errorf(codeUnavailable, cmd.Cmd+" not stored; retry")
	}
	return res, nil
}
