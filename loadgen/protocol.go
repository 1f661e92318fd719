package loadgen

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// This file speaks docs/protocol.md v1 from the client side: the commands a viewer
// sends, the frames it reads, and the close-code table that decides reconnects.

// command is one client command; unused fields are left out.
type command struct {
	ID    string `json:"id"`
	Cmd   string `json:"cmd"`
	Room  string `json:"room,omitempty"`
	Token string `json:"token,omitempty"`
	Since int64  `json:"since,omitempty"`
	Text  string `json:"text,omitempty"`
	CID   string `json:"cid,omitempty"`
	Count int    `json:"count,omitempty"` // cheer taps
	Item  string `json:"item,omitempty"`  // buy
	// Resend marks a send of a cid after the first (the answer was lost): the gateway
	// may have acted on it already.
	Resend bool `json:"resend,omitempty"`

	Product *product `json:"product,omitempty"` // pin
}

// product is the card the host pins. Its id carries the send time like a cid, so
// every viewer measures a pin's latency from the moment the host sent it.
type product struct {
	ID        string      `json:"id"`
	Title     string      `json:"title"`
	Price     float64     `json:"price"`
	Image     string      `json:"image,omitempty"`
	Stock     int64       `json:"stock"`
	FlashSale *flashTerms `json:"flash_sale,omitempty"`
}

// flashTerms make a pinned product a flash sale.
type flashTerms struct {
	Stock        int64 `json:"stock"`
	StartsAt     int64 `json:"starts_at"` // ms since the epoch
	PerUserLimit int   `json:"per_user_limit"`
}

// frame is what the gateway sends: a reply or a batch of events. Only the fields the
// load generator reads are decoded.
type frame struct {
	Type   string       `json:"type"`
	ID     string       `json:"id"`
	Result *replyResult `json:"result"`
	Error  *replyError  `json:"error"`
	Room   string       `json:"room"`
	Events []event      `json:"events"`
}

// replyResult holds the result fields of every reply the load generator reads.
type replyResult struct {
	Seq       int64     `json:"seq"`
	Duplicate bool      `json:"duplicate"`
	Snapshot  *snapshot `json:"snapshot"`
	// cheer
	Credited int64 `json:"credited"`
	Refused  int64 `json:"refused"`
	Total    int64 `json:"total"`
	// pin
	Version int64 `json:"version"`
	// buy
	Answer  string `json:"answer"`
	OrderID string `json:"order_id"`
}

// snapshot is the part of a join reply's snapshot the load generator reads: the
// recent lines (first join) or exactly the lines after `since` (a rejoin).
type snapshot struct {
	Chat      []event   `json:"chat"`
	Recovered bool      `json:"recovered"`
	Cheers    int64     `json:"cheers"`
	Pin       *pinState `json:"pin"`
	Online    int64     `json:"online"`
}

// pinState is a pin event's or snapshot's pin.
type pinState struct {
	Version int64    `json:"version"`
	Product *product `json:"product"`
}

type replyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	RetryMS int64  `json:"retry_ms"`
}

// event is one event of an events frame. Later classes (cheer totals, pins, online
// counts, flash sales) add their fields here and a case in viewer.handleEvent.
type event struct {
	Type  string  `json:"type"`
	Seq   int64   `json:"seq"`
	TS    int64   `json:"ts"`
	CID   string  `json:"cid"`
	Lines []event `json:"lines"` // reset: the room's recent lines

	Total   int64    `json:"total"`   // cheers
	Version int64    `json:"version"` // pin
	Product *product `json:"product"` // pin
	Online  int64    `json:"online"`  // online
}

// Command ids: the first byte says which command a reply answers.
const (
	idJoin  = 'j'
	idChat  = 'c'
	idPing  = 'p'
	idLeave = 'l'
	idCheer = 'k'
	idPin   = 'n'
	idBuy   = 'b'
)

// reconnectPolicy says whether and how soon a viewer reconnects after a close code,
// following the close-code table of docs/protocol.md.
func reconnectPolicy(code websocket.StatusCode) (reconnect, soon bool) {
	switch code {
	case websocket.StatusNormalClosure, websocket.StatusMessageTooBig, 4004, 4005:
		return false, false
	case 4001:
		return true, true
	default: // 4002 too_slow, 4003 auth_expired, 4007 idle, and dropped connections (-1, 1006)
		return true, false
	}
}

// Loadgen chat lines carry their send time and origin in the client message id:
// "lg" + send time (µs since the Unix epoch, base 36) + "-" + shard + "-" + counter.
// Any viewer, in any process of the run, reads the send time back from the event
// and measures end-to-end latency from the moment the line was sent; lines without
// the prefix (a person in a browser) are counted as foreign and not measured.
const cidPrefix = "lg"

func makeCID(sent time.Time, shard int, n uint64) string {
	var b strings.Builder
	b.Grow(32)
	b.WriteString(cidPrefix)
	b.WriteString(strconv.FormatInt(sent.UnixMicro(), 36))
	b.WriteByte('-')
	b.WriteString(strconv.Itoa(shard))
	b.WriteByte('-')
	b.WriteString(strconv.FormatUint(n, 36))
	return b.String()
}

// cidSentUS returns the send time (µs) carried in a loadgen cid, or false.
func cidSentUS(cid string) (int64, bool) {
	if !strings.HasPrefix(cid, cidPrefix) {
		return 0, false
	}
	rest := cid[len(cidPrefix):]
	i := strings.IndexByte(rest, '-')
	if i <= 0 {
		return 0, false
	}
	us, err := strconv.ParseInt(rest[:i], 36, 64)
	return us, err == nil
}

// chatTexts are the lines viewers say: mixed Chinese and Latin, 10–60 characters.
var chatTexts = [...]string{
	"好看!这个颜色太美了 love it",
	"主播可以再试一下那件外套吗 please",
	"3 2 1 上链接!!! waiting",
	"已下单 just bought two 😍",
	"这个多少钱? how much for the blue one",
	"支持支持 from Shanghai 🎉",
	"尺码偏大还是偏小 size question",
	"哈哈哈 so funny 主播太可爱了",
	"能不能包邮 free shipping?",
	"first time here 第一次来 hello everyone",
}

func encodeCommand(c command) []byte {
	b, _ := json.Marshal(c) // a struct of strings and ints cannot fail
	return b
}
