package fanout

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Product is the card a host pins (docs/protocol.md, "pin").
type Product struct {
	ID    string      `json:"id"`
	Title string      `json:"title"`
	Price json.Number `json:"price"`
	Image string      `json:"image"`
	Stock int64       `json:"stock"`
	// FlashSale is carried as given; the flash-sale mechanism reads it.
	FlashSale *PinFlashSale `json:"flash_sale,omitempty"`
}

// PinFlashSale is a pinned product's flash-sale terms.
type PinFlashSale struct {
	Stock        int64 `json:"stock"`
	StartsAt     int64 `json:"starts_at"` // unix ms
	PerUserLimit int   `json:"per_user_limit"`
}

// pinPayload is what LR_PINS stores: product null means unpinned.
type pinPayload struct {
	Product *Product `json:"product"`
	By      User     `json:"by"`
}

// Pin stores p as room's pinned product (nil unpins) and returns its version. Every
// gateway with viewers in the room then sends it to them as state.
func (h *Hub) Pin(ctx context.Context, room string, p *Product, by User) (uint64, error) {
	if !ValidRoom(room) {
		return 0, ErrBadRoom
	}
	data, err := json.Marshal(pinPayload{Product: p, By: by})
	if err != nil {
		return 0, err
	}
	msg := nats.NewMsg(pinSubject(room))
	msg.Data = data
	ack, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(pinStream))
	if err != nil {
		return 0, fmt.Errorf("fanout: pin: %w", err)
	}
	h.statem.pins.Inc()
	return ack.Sequence, nil
}
