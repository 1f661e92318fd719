package gateway

import (
	"context"
	"errors"

	"github.com/liveroom/liveroom/fanout"
)

// buyResult is the reply to a buy press (docs/protocol.md, "Flash sale").
type buyResult struct {
	Answer  fanout.AnswerKind `json:"answer"`
	OrderID string            `json:"order_id,omitempty"`
	RetryMS int64             `json:"retry_ms,omitempty"`
}

// flashConfig is cfg.Flash with what it shares with the rest of the gateway: the
// replication of the streams and the gateway's name.
func (cfg Config) flashConfig() fanout.FlashConfig {
	fc := cfg.Flash
	if fc.Replicas <= 0 {
		fc.Replicas = cfg.Fanout.Replicas
	}
	if fc.Gateway == "" {
		fc.Gateway = cfg.Fanout.State.GatewayID
	}
	return fc
}

// buy answers a flash-sale press. Every press gets one of the engine's answers, fast;
// an error reply means the engine could not tell (retry with the same cid).
func (c *conn) buy(cmd command) (any, *cmdError) {
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	if c.claims == nil {
		return nil, errorf(codeForbidden, "anonymous viewers cannot buy")
	}
	if !fanout.ValidRoom(cmd.Item) {
		return nil, errorf(codeBadRequest, "item must be 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if cmd.CID == "" || len(cmd.CID) > 64 {
		return nil, errorf(codeBadRequest, "cid must be 1-64 characters")
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.PublishTimeout)
	defer cancel()
	a, err := c.g.flash.Buy(ctx, fanout.Press{Room: cmd.Room, Item: cmd.Item, User: c.you.ID, CID: cmd.CID, Resend: cmd.Resend})
	switch {
	case errors.Is(err, fanout.ErrNoSale):
		return nil, errorf(codeNoSale, "no flash sale for item "+cmd.Item)
	case err != nil:
		c.g.log.Warn("buy failed", "room", cmd.Room, "item", cmd.Item, "err", err)
		return nil, errorf(codeUnavailable, "press not answered; retry with the same cid")
	}
	res := buyResult{Answer: a.Kind, OrderID: a.OrderID}
	if a.Retry > 0 {
		res.RetryMS = a.Retry.Milliseconds() + 1
	}
	return res, nil
}
