package gateway

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/liveroom/liveroom/fanout"
)

// replySent is the result of a command that queued its own reply (join does, so that the
// reply comes before any frame of the room: see joinRoom).
type replySent struct{}

// joinRoom adds the connection to cmd.Room and queues the join reply with the snapshot,
// then, when `since` was too far back, the `reset` frame. Both are queued inside the
// hub's join, before the room can deliver a live frame to this connection, so the
// viewer's chat is: the reply's lines (or the reset's), then live frames, with no line
// missing or repeated between them (docs/protocol.md, "Chat recovery").
func (c *conn) joinRoom(cmd command) (any, *cmdError) {
	o := fanout.JoinOptions{User: c.you.ID, Deadline: time.Now().Add(c.g.cfg.JoinWait)}
	if cmd.Since != nil {
		o.Since, o.HasSince = *cmd.Since, true
	}
	o.Joined = func(cj fanout.ChatJoin) {
		c.rooms[cmd.Room] = struct{}{}
		c.g.metrics.joins.Inc()
		res := joinResult{Room: cmd.Room, You: c.you}
		res.Snapshot.Chat = cj.Lines
		if res.Snapshot.Chat == nil {
			res.Snapshot.Chat = []json.RawMessage{}
		}
		res.Snapshot.Recovered = cj.Recovered
		res.Snapshot.SlowMode = cj.SlowMode
		res.Snapshot.StateSnapshot = cj.State
		c.send(encodeReply(cmd.ID, res, nil))
		if cj.Reset != nil {
			c.Deliver(cj.Reset)
		}
	}
	err := c.g.hub.JoinRoom(cmd.Room, c, o)
	switch {
	case errors.Is(err, fanout.ErrBanned):
		return nil, errorf(codeBanned, "banned from room "+cmd.Room)
	case errors.Is(err, fanout.ErrJoinLate):
		return nil, errorf(codeUnavailable, "room busy; retry")
	case err != nil:
		c.g.log.Warn("join failed", "room", cmd.Room, "err", err)
		return nil, errorf(codeUnavailable, "could not subscribe to the room; retry")
	}
	return replySent{}, nil
}

// chatAllowed applies mute and slow mode to a line about to be sent.
func (c *conn) chatAllowed(room string) *cmdError {
	now := time.Now()
	if until, muted := c.g.hub.MutedUntil(room, c.you.ID, now); muted {
		return &cmdError{Code: codeMuted, Message: "muted in room " + room, RetryMS: until.Sub(now).Milliseconds() + 1}
	}
	if c.claims.Role.Staff() {
		return nil
	}
	if wait := c.g.hub.ReserveLine(room, c.you.ID, now); wait > 0 {
		return &cmdError{Code: codeSlowMode, Message: "slow mode: one line per " + c.g.hub.SlowMode(room).String(), RetryMS: wait.Milliseconds() + 1}
	}
	return nil
}

// Banned closes the connection with 4004: its user was banned from room (fanout.BanSink).
func (c *conn) Banned(room string) {
	c.closeWith(CloseBanned, "banned from room "+room)
}
