package main

import (
	"flag"
	"fmt"

	"github.com/liveroom/liveroom/loadgen"
)

// addWHEPFlags adds the WebRTC side of `liveroom loadgen`: WHEP viewers and the
// WHIP publisher.
func addWHEPFlags(fs *flag.FlagSet, c *loadgen.Config, d loadgen.Config) {
	fs.IntVar(&c.WHEP, "whep", 0, fmt.Sprintf("WebRTC viewers that play the room over WHEP: Pion peers with one UDP socket each, all in this process (at most %d); each counts RTP packets, sequence gaps, WHEP request → first keyframe, and its delay drift. With --viewers -1 the run is WebRTC only", loadgen.MaxWHEP))
	fs.StringVar(&c.WHEPURL, "whep-url", "", "media server base URL (http://host:port): viewers POST to <url>/whep/<room>, the publisher to <url>/whip/<room>, its CPU and memory are read from <url>/metrics (default: the first target's host and port; loopback only unless --allow-remote; against loopback, ICE uses 127.0.0.1 only)")
	fs.BoolVar(&c.WHEPPublish, "whep-publish", false, "publish a synthetic 720p30 H.264 stream over WHIP (host token signed with --secret) before the viewers join; it sends a keyframe every --whep-keyframe-every and on the next frame after a PLI, so first-keyframe times measure the server's keyframe requests")
	fs.DurationVar(&c.WHEPKeyframeEvery, "whep-keyframe-every", d.WHEPKeyframeEvery, "--whep-publish: periodic keyframe interval")
	fs.IntVar(&c.WHEPBitrate, "whep-bitrate", d.WHEPBitrate, "--whep-publish: bits/s of the synthetic stream (1.8 Mbit/s: ~220 RTP packets/s of 1022 bytes)")
	fs.Float64Var(&c.WHEPJoinRate, "whep-join-rate", d.WHEPJoinRate, "WHEP requests per second while the WebRTC viewers join")
	fs.BoolVar(&c.WHEPAnonymous, "whep-anonymous", false, "WHEP requests without a token (the media server must allow anonymous viewers); default: a viewer token each, signed with --secret")
}

// printWHEP prints the WebRTC side of a report.
func printWHEP(w *loadgen.WHEPReport) {
	fmt.Printf("whep %s: viewers %d, connected %d, started %d, failed %d %v, not-live retries %d\n",
		w.URL, w.Viewers, w.Connected, w.Started, w.Failed, w.Failures, w.NotLiveRetries)
	fmt.Printf("whep: packets %d, lost %d (%.3f%%), started off a keyframe %d; first keyframe p50/p99/max %.0f/%.0f/%.0f ms (answer p50 %.0f ms, connected p50 %.0f ms)\n",
		w.Packets, w.Lost, w.LossPct, w.StartedOffKeyframe, w.FirstKeyframeMS.P50, w.FirstKeyframeMS.P99, w.FirstKeyframeMS.Max,
		w.AnswerMS.P50, w.ConnectMS.P50)
	fmt.Printf("whep: delay drift start→end p50/p99/max %.1f/%.1f/%.1f ms (mean %.1f ms, %d viewers), growing delay %v\n",
		w.DelayDriftMS.P50, w.DelayDriftMS.P99, w.DelayDriftMS.Max, w.DelayDriftMeanMS, w.DelayDriftMS.Count, w.GrowingDelay)
	if p := w.Publisher; p != nil {
		fmt.Printf("whip publisher: frames %d (missed %d), keyframes %d (%d on request), PLIs %d, %.0f packets/s, %.0f kbit/s %s\n",
			p.Frames, p.MissedFrames, p.Keyframes, p.KeyframesOnRequest, p.PLIs, p.PacketsPerS, p.KbitPerS, p.Error)
	}
	s := w.Server
	fmt.Printf("media server: %.2f µs CPU per packet received (%.1f s CPU / %d packets in a %.1f s steady window, %d forwarded), RSS %.0f → %.0f MiB, %.0f KiB per connected viewer %s\n",
		s.CPUUSPerPacket, s.CPUS, s.PacketsReceived, s.WindowS, s.Forwarded, s.RSSBeforeMB, s.RSSMB, s.KiBPerViewer, s.Error)
	if w.Error != "" {
		fmt.Printf("whep error: %s\n", w.Error)
	}
}
