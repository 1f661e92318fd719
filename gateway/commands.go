package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// handle runs one client frame and queues its reply.
func (c *conn) handle(data []byte) {
	cmd, cerr := parseCommand(data)
	m := c.g.metrics
	var result any
	if cerr == nil {
		m.frameIn(cmd.Cmd)
		switch cmd.Cmd {
		case "join":
			result, cerr = c.join(cmd)
		case "leave":
			result, cerr = c.leave(cmd)
		case "chat":
			result, cerr = c.chat(cmd)
		case "buy":
			result, cerr = c.buy(cmd)
		case "ping":
			result = pingResult{TS: time.Now().UnixMilli()}
		case "cheer":
			result, cerr = c.cheer(cmd)
		case "pin", "unpin":
			result, cerr = c.pin(cmd)
		case "delete", "mute", "ban", "unban", "slow_mode":
			result, cerr = c.moderate(cmd)
		default:
			cerr = errorf(codeUnknown, fmt.Sprintf("unknown command %q", cmd.Cmd))
		}
	} else {
		m.frameIn("other")
	}
	if cerr != nil {
		m.errors[cerr.Code].Inc()
		c.send(encodeReply(cmd.ID, nil, cerr))
		if isPolicyError(cerr.Code) {
			c.policyErrors++
			if c.policyErrors >= c.g.cfg.PolicyErrorLimit {
				c.closeWith(ClosePolicy, "too many bad commands")
			}
		}
		return
	}
	if _, sent := result.(replySent); sent {
		return
	}
	c.send(encodeReply(cmd.ID, result, nil))
}

func (c *conn) join(cmd command) (any, *cmdError) {
	if !fanout.ValidRoom(cmd.Room) {
		return nil, errorf(codeBadRequest, "room must be 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if _, ok := c.rooms[cmd.Room]; ok {
		return nil, errorf(codeAlreadyJoined, "already joined "+cmd.Room)
	}
	if len(c.rooms) >= c.g.cfg.MaxRoomsPerConn {
		return nil, errorf(codeTooManyRooms, "at most "+strconv.Itoa(c.g.cfg.MaxRoomsPerConn)+" rooms per connection")
	}
	if err := c.authorize(cmd); err != nil {
		return nil, err
	}
	return c.joinRoom(cmd) // chatjoin.go: queues the reply with the snapshot itself
}

// authorize settles who the connection is (once: one user per connection) and whether
// it may join cmd.Room.
func (c *conn) authorize(cmd command) *cmdError {
	now := time.Now()
	claims := c.claims
	if cmd.Token != "" {
		var err error
		claims, err = auth.Verify(c.g.cfg.Secret, cmd.Token, now)
		switch {
		case errors.Is(err, auth.ErrExpired):
			return errorf(codeTokenExpired, "token expired")
		case err != nil:
			return errorf(codeUnauthorized, "token not valid")
		}
		if c.you.ID != "" && c.you.ID != claims.UserID {
			return errorf(codeForbidden, "a connection belongs to one user")
		}
	}
	if claims == nil {
		if c.you.ID != "" || c.g.cfg.AllowAnonymous {
			// Anonymous: read-only, any room.
			if c.you.ID == "" {
				c.you = fanout.User{ID: "anon-" + strconv.FormatUint(c.g.nextAnon.Add(1), 10), Name: "guest", Role: string(auth.RoleViewer)}
			}
			return nil
		}
		return errorf(codeUnauthorized, "token required")
	}
	if !claims.Expires.After(now) {
		return errorf(codeTokenExpired, "token expired")
	}
	if !claims.AllowsRoom(cmd.Room) {
		return errorf(codeForbidden, "token does not allow room "+cmd.Room)
	}
	if c.claims != claims {
		c.claims = claims
		c.you = fanout.User{ID: claims.UserID, Name: claims.Name, Role: string(claims.Role)}
		if c.limiter == nil {
			c.limiter = rate.NewLimiter(rate.Limit(c.g.cfg.ChatRate), c.g.cfg.ChatBurst)
		}
		c.watchExpiry(claims.Expires)
	}
	return nil
}

// watchExpiry closes the connection with 4003 when its token expires.
func (c *conn) watchExpiry(at time.Time) {
	d := time.Until(at)
	if c.authExpiry == nil {
		c.authExpiry = time.AfterFunc(d, func() { c.closeWith(CloseAuthExpired, "token expired") })
		return
	}
	c.authExpiry.Reset(d)
}

func (c *conn) leave(cmd command) (any, *cmdError) {
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	delete(c.rooms, cmd.Room)
	c.g.hub.Leave(cmd.Room, c)
	return empty{}, nil
}

func (c *conn) chat(cmd command) (any, *cmdError) {
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	if c.claims == nil {
		return nil, errorf(codeForbidden, "anonymous viewers cannot chat")
	}
	if n := utf8.RuneCountInString(cmd.Text); n == 0 || n > c.g.cfg.MaxChatRunes || !utf8.ValidString(cmd.Text) {
		return nil, errorf(codeTextTooLong, "text must be 1-"+strconv.Itoa(c.g.cfg.MaxChatRunes)+" characters")
	}
	if cmd.CID == "" || len(cmd.CID) > 64 {
		return nil, errorf(codeBadRequest, "cid must be 1-64 characters")
	}
	if r := c.limiter.Reserve(); r.Delay() > 0 {
		d := r.Delay()
		r.Cancel()
		return nil, rateLimited("chat rate limit", d)
	}
	if err := c.chatAllowed(cmd.Room); err != nil { // mute, slow mode (chatjoin.go)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.PublishTimeout)
	defer cancel()
	ack, err := c.g.hub.PublishChat(ctx, cmd.Room, fanout.ChatLine{User: c.you, Text: cmd.Text, CID: cmd.CID})
	if err != nil {
		c.g.log.Warn("chat publish failed", "room", cmd.Room, "err", err)
		return nil, errorf(codeUnavailable, "chat not stored; resend with the same cid")
	}
	if ack.Duplicate {
		c.g.metrics.chatDuplicate.Inc()
	} else {
		c.g.metrics.chatStored.Inc()
	}
	return chatResult(ack), nil
}
