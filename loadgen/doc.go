// Package loadgen replays a live room against liveroom gateways and reports what the
// viewers saw: `liveroom loadgen` is its command. The profile it plays by default is
// the seed's 22k-viewer room (../shared/seed-profile.md); "flat" is a plain fan-out
// test.
//
// Where to start:
//
//   - config.go: Config, every profile parameter with its default, and the target
//     safety check (loopback only unless AllowRemote).
//   - run.go: Run, the entry point: one process, or one child process per
//     PerProcess viewers, then the merged Report.
//   - profile.go: the schedule, a pure function of Config: audience curve, churn,
//     chat and cheer rates over time, compressed by Speed.
//   - engine.go: one shard in one process: its state, the writer pool, spawning and
//     retiring viewers. control.go: the controller goroutine that follows the
//     schedule (joins and leaves, who chats, cheers, pins and presses, heartbeats
//     from one heap). drain.go: the end of a shard's run.
//   - viewer.go: one simulated viewer, one goroutine that dials, joins, reads every
//     frame and reconnects with jittered backoff per the close-code table.
//     actions.go: its chat lines, cheers and pins, resent after a reconnect, and the
//     replies and state events that settle them. flash.go: the flash-sale herd.
//     probe.go: the observer join that reads the cheer total before and after.
//   - protocol.go: protocol v1 from the client side (docs/protocol.md), and the cid
//     format that carries a line's send time; fastframe.go: a single-pass reader
//     of events frames (the hot path: every viewer decodes every frame), falling
//     back to encoding/json for anything unusual.
//   - shard.go: the child-process protocol (JSON lines over stdin/stdout) and
//     ServeShard, what `liveroom loadgen --shard i/n` runs.
//   - dial.go: spreading source addresses over 127.0.0.x when one address's ephemeral
//     ports would run out.
//   - histogram.go: a log-linear latency histogram that merges exactly across
//     viewers, seconds and processes.
//   - stats.go, progress.go, scrape.go: counters, the per-second progress line and
//     timeline, and the gateways' CPU and memory read from their /metrics.
//   - accounting.go: the chat ledger: which lines each viewer was owed, within the
//     per-viewer chat budget.
//   - report.go, html.go: the Report (JSON schema of issue 5) and its HTML page.
//   - mediarun.go: the WebRTC side (Config.WHEP, WHEPPublish), in the parent process
//     only: publisher.go, a WHIP client sending a synthetic 720p30 H.264 stream
//     (internal/rtpsynth) that answers PLI with a keyframe; whep.go, one WHEP viewer
//     (a Pion peer connection, its own UDP socket) counting packets, sequence gaps,
//     WHEP request → first keyframe and delay drift; webrtc.go, the Pion API (ICE on
//     127.0.0.1 only against a loopback server) and the WHIP/WHEP exchange. The
//     media server's CPU per packet and memory per viewer come from its /metrics.
//   - bench-22k.sh: the 22k room on one machine, `liveroom serve` + `liveroom
//     gateway` + `liveroom loadgen`, end to end.
//
// How delivery is counted. Every chat line a load generator sends carries its send
// time in its cid ("lg<µs base 36>-<shard>-<n>"), so any viewer in any process of the
// run measures latency from the moment the line was sent, not from when it was stored.
// A viewer's window opens when its first join is answered and closes (its cut) when
// it decides to leave (it keeps reading for LeaveGrace), when the load stops, or when
// it drops for good. It expects every line the gateways acknowledged as stored whose
// send time lies in its window; the parent counts that from all shards' stored lines
// after the run, capped per second of send time at ChatViewBudget ordinary lines
// (the gateway may sample a busy room; host lines are always owed; lines above the
// budget are reported as sampled). Lost = expected − delivered; a line seen again
// (seq not above the last seen) is a duplicate. A viewer that reconnects rejoins
// with `since` and counts the lines the join reply recovers. At the end every shard drains until each of its viewers
// has seen the highest seq stored by any shard (bounded by Drain), so a healthy run
// reports 0 lost without any fixed wait.
//
// The other classes. Pins: the host pins every PinEvery; a viewer is owed every pin
// sent in its window and covers it by seeing that version or a newer one (state is
// coalesced); latency is from the host's send (carried in the product id). Cheers:
// viewers send taps per the profile; a cheer answered `unavailable` is resent with the
// same cid (maxCheerTries), and its taps are unknown if no definite answer ever comes
// (nor one to a cheer whose viewer dropped for good). The room's total is read before
// and after the run by an observer join; its growth must lie in [acked, acked+unknown],
// and it is exact when nothing is unknown and it grew by exactly the taps acked;
// cheer_total latency is from a cheer's first send until its sender sees the room
// total reach what that cheer's reply reported (every acknowledged cheer is measured). Online: at the end every viewer still
// connected is owed the run's audience as the room's online count (a viewer that has
// sent its leave never reconnects, so the room and the run count the same people). Flash sales
// (flash.go): the host pins a sale, every viewer that sees it presses at the
// countdown; the report counts answers, wins per sale against stock, and users who
// won twice. The drain waits for all of these before the viewers leave.
package loadgen
