package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// Room state commands: cheer (any signed-in viewer), pin and unpin (host only).
// docs/protocol.md, "Room state".

type cheerResult struct {
	// Credited is how many of the command's taps count (the rest were over the
	// per-user rate); Total is the room's total once they do.
	Credited  int64 `json:"credited"`
	Refused   int64 `json:"refused"`
	Total     int64 `json:"total"`
	Duplicate bool  `json:"duplicate"`
}

type pinResult struct {
	Version uint64 `json:"version"`
}

const maxCheerCount = 10000

func (c *conn) cheer(cmd command) (any, *cmdError) {
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	if c.claims == nil {
		return nil, errorf(codeForbidden, "anonymous viewers cannot cheer")
	}
	if cmd.CID == "" || len(cmd.CID) > 64 {
		return nil, errorf(codeBadRequest, "cid must be 1-64 characters")
	}
	if cmd.Count <= 0 || cmd.Count > maxCheerCount {
		return nil, errorf(codeBadRequest, "count must be 1-"+strconv.Itoa(maxCheerCount))
	}
	if c.cheerLimiter == nil {
		c.cheerLimiter = rate.NewLimiter(rate.Limit(c.g.cfg.CheerRate), c.g.cfg.CheerBurst)
	}
	now := time.Now()
	n := min(cmd.Count, int64(math.Floor(c.cheerLimiter.TokensAt(now))))
	var taken *rate.Reservation
	if n > 0 {
		taken = c.cheerLimiter.ReserveN(now, int(n))
	}
	res := cheerResult{Credited: n, Refused: cmd.Count - n}
	if n == 0 {
		c.g.statem.cheerRefused.Add(float64(cmd.Count))
		return nil, rateLimited("cheer rate limit: "+strconv.FormatFloat(c.g.cfg.CheerRate, 'g', -1, 64)+" taps/s", time.Second/time.Duration(max(1, int(c.g.cfg.CheerRate))))
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.PublishTimeout)
	defer cancel()
	ack, err := c.g.hub.Cheer(ctx, cmd.Room, c.you.ID, cmd.CID, n, cmd.Resend)
	if errors.Is(err, fanout.ErrCheerNotStored) {
		return nil, errorf(codeUnavailable, "cheer not stored; resend with the same cid")
	}
	if err != nil {
		// The batch failed in a way that may or may not have stored it.
		c.g.log.Warn("cheer outcome unknown", "room", cmd.Room, "err", err)
		return nil, errorf(codeUnavailable, "cheer outcome unknown; resend with the same cid (never counted twice)")
	}
	if ack.Duplicate {
		// Counted before (this is a resend): what counts is what was credited then,
		// and the resend takes nothing from the viewer's rate.
		taken.CancelAt(now)
		res.Credited, res.Refused = ack.Credited, max(0, cmd.Count-ack.Credited)
		c.g.statem.cheerDuplicate.Inc()
	} else {
		c.g.statem.cheerRefused.Add(float64(res.Refused))
		c.g.statem.cheerCredited.Add(float64(n))
	}
	res.Total, res.Duplicate = ack.Total, ack.Duplicate
	return res, nil
}

// pin handles `pin` and `unpin`.
func (c *conn) pin(cmd command) (any, *cmdError) {
	if _, ok := c.rooms[cmd.Room]; !ok {
		return nil, errorf(codeNotJoined, "not in room "+cmd.Room)
	}
	if c.claims == nil || c.claims.Role != auth.RoleHost {
		return nil, errorf(codeForbidden, "only the host can pin")
	}
	var p *fanout.Product
	if cmd.Cmd == "pin" {
		var err error
		if p, err = parseProduct(cmd.Product); err != nil {
			return nil, errorf(codeBadRequest, err.Error())
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.PublishTimeout)
	defer cancel()
	if cerr := c.g.openFlashSale(ctx, cmd.Room, p); cerr != nil {
		return nil, cerr
	}
	v, err := c.g.hub.Pin(ctx, cmd.Room, p, c.you)
	if err != nil {
		c.g.log.Warn("pin not stored", "room", cmd.Room, "err", err)
		return nil, errorf(codeUnavailable, "pin not stored; retry")
	}
	return pinResult{Version: v}, nil
}

// parseProduct decodes and checks a product card.
func parseProduct(raw json.RawMessage) (*fanout.Product, error) {
	if len(raw) == 0 {
		return nil, errors.New("product is required")
	}
	var p fanout.Product
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, errors.New("product is not a valid product object: " + err.Error())
	}
	switch {
	case p.ID == "" || len(p.ID) > 64:
		return nil, errors.New("product.id must be 1-64 characters")
	case p.Title == "" || utf8.RuneCountInString(p.Title) > 200:
		return nil, errors.New("product.title must be 1-200 characters")
	case len(p.Image) > 2048 || p.Image != "" && !strings.HasPrefix(p.Image, "https://") && !strings.HasPrefix(p.Image, "http://") && !strings.HasPrefix(p.Image, "/"):
		return nil, errors.New("product.image must be an http(s) URL or a path")
	case p.Stock < 0:
		return nil, errors.New("product.stock must be >= 0")
	}
	if f, err := p.Price.Float64(); err != nil || f < 0 {
		return nil, errors.New("product.price must be a number >= 0")
	}
	if fs := p.FlashSale; fs != nil && (fs.Stock < 0 || fs.StartsAt < 0 || fs.PerUserLimit < 0) {
		return nil, errors.New("product.flash_sale fields must be >= 0")
	}
	return &p, nil
}
