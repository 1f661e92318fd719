// Package media is liveroom's WebRTC media server: hosts publish with WHIP (RFC 9725),
// viewers play with WHEP, and one forwarder per publisher track carries each packet
// to every viewer.
//
// Where to start:
//
//   - server.go: New, Handler, Close; HTTP routing, CORS, token checks. One UDP port
//     (ice.go: UDP mux, candidate addresses, codecs, the two Pion APIs) carries every
//     peer's ICE, DTLS and SRTP.
//   - whip.go: POST /whip/{room} starts a broadcast (one per room, a second publisher
//     gets 409), DELETE /whip/{room}/{id} ends it. A broadcast owns its forwarders
//     and viewers and publishes the room's live status (status.go); the room goes
//     live once every track the offer announced has started (or Config.TrackWait
//     after the first), so that no viewer is answered with only some of them.
//   - whep.go: POST /whep/{room} adds a viewer (404 when the room is not live; a
//     request in the gap between the first track and going live waits for it),
//     DELETE /whep/{room}/{id} removes it.
//   - forwarder.go, ring.go: one goroutine per publisher track reads each packet,
//     keeps it once in a ring (ring.go) and writes it to every started viewer.
//   - downtrack.go: a viewer's track, a webrtc.TrackLocal with no packets of its
//     own: SSRC, payload type and sequence/timestamp offsets, the NACK path (served
//     from the shared ring) and the RTCP loop.
//   - keyframe.go: where a viewer may start (H.264 SPS/IDR, VP8 key frames) and the
//     merged, throttled keyframe requests (PLI) to the publisher.
//   - status.go: live status on lr.live.<room> in the LR_LIVE stream, and the room's
//     origin (the node its host publishes to, Config.PublicURL) on
//     lr.live.<room>.origin, which gateways do not get.
//   - relay.go: an edge. WHEP for a room published on another node opens one WHEP
//     session to that origin and feeds its tracks into a broadcast of its own, which
//     serves local viewers like a publisher's; it ends RelayIdle after its last
//     viewer, or when the origin stops.
//   - metrics.go: liveroom_media_* series.
//
// The contract: viewers get the publisher's codec and payload unchanged, with their
// own header; each starts on a keyframe and then sees a gapless sequence. Viewers
// use no Pion interceptors (they would copy every packet per viewer); publishers use
// Pion's defaults (NACK generation, reports, TWCC feedback). docs/media.md has the
// design and the measured cost per packet.
package media
