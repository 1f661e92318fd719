package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/liveroom/liveroom/fanout"
)

// openFlashSale opens the flash sale of a product being pinned with flash_sale terms
// (docs/flashsale.md, "Pins"). It runs before the pin is stored, so that a viewer who
// sees the pin can buy at once. Pinning the same terms again keeps the running sale;
// other terms start a new sale of the item. Products without flash_sale open nothing.
func (g *Gateway) openFlashSale(ctx context.Context, room string, p *fanout.Product) *cmdError {
	if p == nil || p.FlashSale == nil {
		return nil
	}
	fs := p.FlashSale
	if !fanout.ValidRoom(p.ID) {
		return errorf(codeBadRequest, "a flash-sale product.id must be 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if fs.Stock < 1 {
		return errorf(codeBadRequest, "product.flash_sale.stock must be >= 1")
	}
	_, err := g.flash.Open(ctx, fanout.Sale{Room: room, Item: p.ID, Stock: int(fs.Stock),
		StartsAt: time.UnixMilli(fs.StartsAt), PerUserLimit: max(fs.PerUserLimit, 1)})
	if err != nil {
		g.log.Warn("flash sale not opened", "room", room, "item", p.ID, "err", err)
		return errorf(codeUnavailable, "flash sale not opened; retry the pin")
	}
	return nil
}

// flashHTTPStatus is the pin API's status for an openFlashSale error.
func flashHTTPStatus(e *cmdError) int {
	if e.Code == codeBadRequest {
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}
