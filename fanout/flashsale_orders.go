package fanout

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Flash-sale names in NATS (docs/flashsale.md).
const (
	// OrdersStream is the JetStream stream of order intents the shop consumes.
	OrdersStream     = "LR_ORDERS"
	ordersSubjectAll = "lr.orders.>"
	// flashBucket is the KV bucket holding one record per sale: "sale.<room>.<item>".
	flashBucket = "LR_FLASH"
	// stockRepublishSrc/Dst re-publish every change of a sale record to the room's
	// event subject, which every gateway with viewers in the room subscribes to.
	stockRepublishSrc = "$KV." + flashBucket + ".sale.*.*"
	stockRepublishDst = "lr.ev.{{wildcard(1)}}.stock"
)

// orderSubject is the one subject unit n of a sale may ever be stored on. Publishing
// with "expected last subject sequence 0" makes JetStream refuse a second order for
// the same unit, forever: this is what makes oversell impossible.
func orderSubject(room, sale string, unit int) string {
	return "lr.orders." + room + "." + sale + "." + strconv.Itoa(unit)
}

func saleKey(room, item string) string { return "sale." + room + "." + item }

// orderMsgID is the dedupe id of a user's slot-th unit of a sale (slot 1..limit):
// JetStream stores at most one message per id within the dedupe window, so a user
// never holds more than per_user_limit orders.
func orderMsgID(sale, user string, slot int) string {
	return sale + "/" + user + "/" + strconv.Itoa(slot)
}

// Order is one order intent in LR_ORDERS, as the shop's backend reads it.
type Order struct {
	ID      string `json:"order_id"` // "<sale>-<unit>", unique
	Sale    string `json:"sale"`
	Room    string `json:"room"`
	Item    string `json:"item"`
	Unit    int    `json:"unit"` // 1..stock
	User    string `json:"user"`
	Slot    int    `json:"slot"` // which of the user's per_user_limit units (1-based)
	CID     string `json:"cid"`  // the client id of the winning press
	Gateway string `json:"gateway"`
	TS      int64  `json:"ts"` // unix ms when the gateway sent it
}

func orderID(sale string, unit int) string { return sale + "-" + strconv.Itoa(unit) }

// ensureFlash creates or updates the order stream and the sale bucket.
func ensureFlash(ctx context.Context, js jetstream.JetStream, cfg FlashConfig) (jetstream.Stream, jetstream.KeyValue, error) {
	orders, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        OrdersStream,
		Description: "liveroom flash-sale order intents: one subject per unit, dedupe per user slot",
		Subjects:    []string{ordersSubjectAll},
		// Limits, not work-queue: an order must stay stored after the shop acknowledges
		// it, because its presence on the unit's subject is the oversell guard.
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     cfg.OrderMaxAge,
		Duplicates: cfg.OrderDedupeWindow,
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: stream %s: %w", OrdersStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      flashBucket,
		Description: "liveroom flash sales: stock pool and leases per sale",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		RePublish:   &jetstream.RePublish{Source: stockRepublishSrc, Destination: stockRepublishDst},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: bucket %s: %w", flashBucket, err)
	}
	return orders, kv, nil
}

// isWrongLastSeq reports a failed "expected last sequence" check: for an order, the
// unit is already sold; for a KV update, someone else wrote first.
func isWrongLastSeq(err error) bool {
	var jerr jetstream.JetStreamError
	if !errors.As(err, &jerr) || jerr.APIError() == nil {
		return false
	}
	c := jerr.APIError().ErrorCode
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// newID returns a random 16-character id of [a-z2-7], usable as a subject token.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
