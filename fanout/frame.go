package fanout

import "time"

// Class says how a frame may be treated when a viewer's queue is full
// (docs/protocol.md, "Delivery classes").
type Class uint8

const (
	// ClassReply frames must be delivered; a viewer that cannot take one is too slow.
	ClassReply Class = iota
	// ClassStream frames (chat batches) may be dropped, oldest first.
	ClassStream
	// ClassState frames carry the latest value of Key; a newer one replaces a queued
	// older one, and they are never dropped otherwise.
	ClassState
)

// Frame is one encoded WebSocket text message. Frames handed to sinks are shared by
// every viewer of a room and must not be modified.
type Frame struct {
	Data  []byte
	Class Class
	// Key identifies the piece of state a ClassState frame carries (room + kind), so
	// that a queue can keep only the newest frame per key.
	Key string
	// Received is when the oldest event in the frame arrived from NATS; the writer
	// observes receipt-to-write latency from it. Zero for frames not from NATS.
	Received time.Time
	// Events is how many events the frame carries (for metrics).
	Events int
	// State is set on a ClassStream frame that also carries state events (a room's
	// tick frame with chat and state): the same state events as a frame of their own.
	// A queue that must drop the frame queues State in its place, so that a slow
	// viewer loses chat, never state.
	State *Frame
}

// Sink receives a room's frames. Deliver is called from the room's flush and must not
// block: a viewer's connection queues the frame and returns.
type Sink interface {
	Deliver(f *Frame)
}
