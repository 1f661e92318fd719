// Package fanout moves a room's events between NATS and the viewers held by one gateway.
//
// Start at Hub. A gateway has one Hub. When the first local viewer of a room joins
// (Hub.Join), the hub takes ONE NATS subscription for that room (subject
// "lr.ev.<room>.>"); when the last one leaves it drops it. Events that arrive during a
// short tick are merged into one frame per room, encoded once, and the same bytes are
// handed to every local viewer's Sink. State changes (pin, cheer total, online count,
// live, slow mode, stock) ride the same tick frame, the newest value per key, so a viewer
// gets at most one frame per room per tick (room.go: queueState, tickFrame). The number of frames built grows with rooms ×
// ticks, and the number of queue pushes with viewers × ticks, never messages × viewers.
//
// Chat lines are published by the sender's gateway into the JetStream stream LR_CHAT
// (subject "lr.chat.<room>", per-room history limit, dedupe by user + client id). The
// stream re-publishes each stored line to "lr.ev.<room>.chat" with its stream sequence
// and storage time in headers, which is what every gateway's room subscription receives.
// So the order and the sequence numbers viewers see are the stream's, the same on every
// gateway.
//
// Chat on one gateway (chatroom.go, chatlog.go, chathistory.go): each room keeps its
// recent chat entries in memory, fed by the flush, so that Hub.JoinRoom can hand a
// joining viewer the recent lines, or exactly what it missed since a seq (from memory,
// else one batched direct get from LR_CHAT), or a reset, in one step with adding it to
// the room. The flush drops entries it already has, fills gaps that Nats-Last-Sequence
// reveals, and samples ordinary lines above the per-viewer budget at the room level
// (one shared frame; a sender whose own line was sampled out gets a frame of its own).
//
// Moderation (moderation.go): bans, mutes and slow mode in the KV bucket LR_MOD, watched
// by one watcher per hub; a deleted line is a tombstone entry in the room's chat.
//
// Flash sales (flashsale*.go, stock.go; docs/flashsale.md): start at FlashSales, one
// per gateway, beside the Hub. A sale's stock pool is a key in the KV bucket LR_FLASH,
// leased to gateways in small batches by compare-and-swap; each win is an order intent
// in the stream LR_ORDERS on its unit's own subject (stored only if the unit was never
// sold) with a per-user-slot dedupe id. Pool changes are re-published to
// "lr.ev.<room>.stock" and reach viewers as `stock` state.
//
// Room state (statestreams.go has the map of streams and subjects): cheers are counted
// exactly by Hub.Cheer (cheers.go: one JetStream atomic batch per room per tick, with a
// claim per command, into the counter stream LR_CHEERS); viewer counts and unique
// viewers by a per-hub loop (viewers.go); pins by Hub.Pin (pins.go). A room loads its
// state when it opens on this gateway and keeps it current from its subscription
// (state.go); JoinRoom hands it to the joining viewer as ChatJoin.State.
//
// The wire format of the frames is documented in docs/protocol.md.
package fanout
