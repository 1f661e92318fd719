package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/liveroom/liveroom/loadgen"
)

// runLoadgen is `liveroom loadgen`: flags into loadgen.Config, Run, write the reports.
// With the hidden --shard i/n flag it is one child of a sharded run instead: it reads
// its part from stdin and reports on stdout (see loadgen.ServeShard).
func runLoadgen(ctx context.Context, args []string) error {
	for _, a := range args {
		if a == "--shard" || a == "-shard" || strings.HasPrefix(a, "--shard=") || strings.HasPrefix(a, "-shard=") {
			return loadgen.ServeShard(ctx, os.Stdin, os.Stdout)
		}
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	d := loadgen.Defaults(0)
	var c loadgen.Config
	targets := fs.String("targets", "ws://127.0.0.1:8080/ws", "comma-separated gateway WebSocket URLs; viewers are spread over them round-robin")
	fs.StringVar(&c.NATS, "nats", "", "the deployment's NATS URL (optional): after a run with flash sales, read LR_ORDERS and check that every answered win is stored there once (loopback only unless --allow-remote)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses (off: a typo cannot aim a load test at someone else's machine)")
	fs.StringVar(&c.Room, "room", d.Room, "room every viewer joins")
	secret := fs.String("secret", envOr("LIVEROOM_SECRET", ""), "token signing secret shared with the gateways (env LIVEROOM_SECRET); empty uses the development secret")
	fs.StringVar(&c.Profile, "profile", d.Profile, "seed: the 22k room's audience curve, churn and chat bursts; flat: everyone joins, then constant chat for --hold")
	fs.Float64Var(&c.Speed, "speed", d.Speed, "compress the profile's time axis by this factor (10: three hours in eighteen minutes); per-second rates stay as given")
	fs.DurationVar(&c.Duration, "duration", 0, "hard bound on the whole run, drain included (0: the profile's length / speed + drain; a WebRTC-only run: 1m)")
	fs.DurationVar(&c.Drain, "drain", d.Drain, "after the load stops, how long viewers may keep reading until every line sent has arrived")

	fs.IntVar(&c.Viewers, "viewers", d.Viewers, "peak audience of WebSocket viewers (-1: none, a WebRTC-only run with --whep or --whep-publish)")
	fs.IntVar(&c.PerProcess, "per-process", d.PerProcess, "most viewers per process; above it the run shards itself over child processes (one process may hold 20000 open files)")
	fs.IntVar(&c.PortsPerSourceAddr, "ports-per-source-addr", d.PortsPerSourceAddr, "connections per source address before spreading over 127.0.0.2, .3, … (loopback targets only)")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", d.DialConcurrency, "connects in flight per process")

	fs.DurationVar(&c.ReminderWave, "reminder-wave", d.ReminderWave, "seed: length of the first join wave (profile time)")
	fs.Float64Var(&c.ReminderShare, "reminder-share", d.ReminderShare, "seed: fraction of the peak online at the end of the reminder wave")
	fs.DurationVar(&c.SharingEnd, "sharing-end", d.SharingEnd, "seed: end of the sharing phase, when the audience reaches the peak")
	fs.IntVar(&c.SharingWaves, "sharing-waves", d.SharingWaves, "seed: join waves during the sharing phase (negative: none)")
	fs.IntVar(&c.SharingWaveJoins, "sharing-wave-joins", 0, "seed: joins per sharing wave (0: 2000 × viewers/22000)")
	fs.DurationVar(&c.WaveLength, "wave-length", d.WaveLength, "seed: how long one sharing wave's joins are spread over")
	fs.DurationVar(&c.PlateauEnd, "plateau-end", d.PlateauEnd, "seed: end of the plateau")
	fs.Float64Var(&c.PlateauJitter, "plateau-jitter", d.PlateauJitter, "seed: the plateau's audience wanders down to (1 - this) of the peak")
	fs.Float64Var(&c.ChurnPerSec, "churn", 0, "seed: joins and as many leaves per profile second during plateau and tail (0: 10 × viewers/22000; negative: none)")
	fs.DurationVar(&c.TailEnd, "tail-end", d.TailEnd, "seed: end of the slow decay; chat stops here")
	fs.Float64Var(&c.TailShare, "tail-share", d.TailShare, "seed: fraction of the peak still online at the end of the tail")
	fs.DurationVar(&c.EndLeave, "end-leave", d.EndLeave, "seed: the rest leave within this long after the tail")
	fs.DurationVar(&c.SessionMedian, "session-median", d.SessionMedian, "median of the log-normal session length; the shortest sessions leave first")
	fs.DurationVar(&c.Heartbeat, "heartbeat", d.Heartbeat, "each viewer's ping command interval, jittered ±20%, real time")

	fs.Float64Var(&c.ChatRate, "chat-rate", d.ChatRate, "seed: normal chat, lines/s room-wide (negative: none)")
	fs.IntVar(&c.ChatBursts, "chat-bursts", d.ChatBursts, "seed: chat bursts spread evenly over the profile (negative: none)")
	fs.Float64Var(&c.ChatBurstRate, "chat-burst-rate", d.ChatBurstRate, "seed: lines/s room-wide during a chat burst")
	fs.DurationVar(&c.ChatBurstLength, "chat-burst-length", d.ChatBurstLength, "seed: length of one chat burst (profile time)")
	fs.IntVar(&c.ChatViewBudget, "chat-view-budget", d.ChatViewBudget, "ordinary chat lines/s each viewer is owed; the gateway may sample lines above it (set it to the gateway's chat budget; negative: every line is owed)")

	fs.Float64Var(&c.CheerRate, "cheer-rate", d.CheerRate, "seed: cheer taps/s room-wide, sent as one cheer of up to 10 taps per viewer every ≥0.5 s (negative: none)")
	fs.IntVar(&c.CheerBursts, "cheer-bursts", d.CheerBursts, "seed: cheer bursts spread evenly over the profile (negative: none)")
	fs.Float64Var(&c.CheerBurstRate, "cheer-burst-rate", d.CheerBurstRate, "seed: taps/s room-wide during a cheer burst")
	fs.DurationVar(&c.CheerBurstLength, "cheer-burst-length", d.CheerBurstLength, "seed: length of one cheer burst (profile time)")
	fs.DurationVar(&c.PinEvery, "pin-every", d.PinEvery, "the host pins a product this often (profile time, at least 2 s; in the flat profile too, while it holds)")
	fs.DurationVar(&c.HostChatEvery, "host-chat-every", d.HostChatEvery, "host says something in chat this often (profile time)")
	fs.IntVar(&c.FlashSales, "flash-sales", d.FlashSales, "seed: flash sales the host pins, spread over plateau and tail (negative: none)")
	fs.IntVar(&c.FlashStock, "flash-stock", d.FlashStock, "units per flash sale (one per user)")
	fs.IntVar(&c.FlashPresses, "flash-presses", d.FlashPresses, "most buy presses per viewer per sale, 0.2-0.5 s apart, until a final answer")
	fs.BoolVar(&c.FlashMash, "flash-mash", false, "every viewer presses all --flash-presses times, final answer or not (each press a new cid)")
	fs.DurationVar(&c.FlashLead, "flash-lead", d.FlashLead, "countdown from a flash sale's pin to its start (real time); viewers press within the first second")
	fs.IntVar(&c.FlatFlashSales, "flat-flash-sales", 0, "flat: flash sales spread over --hold")

	fs.DurationVar(&c.Hold, "hold", d.Hold, "flat: how long to chat once every viewer has joined")
	fs.Float64Var(&c.FlatChatRate, "flat-chat-rate", d.FlatChatRate, "flat: lines/s room-wide")
	fs.Float64Var(&c.FlatCheerRate, "flat-cheer-rate", 0, "flat: cheer taps/s room-wide while it holds (0: none)")
	fs.Float64Var(&c.FlatJoinRate, "flat-join-rate", 0, "flat: joins/s while filling the room (0: as fast as --dial-concurrency allows)")
	fs.DurationVar(&c.LeaveGrace, "leave-grace", d.LeaveGrace, "a leaving viewer keeps reading this long; lines sent before it decided to leave that arrive later count as lost")
	fs.Int64Var(&c.Seed, "seed", 0, "random seed (0: from the clock)")
	addWHEPFlags(fs, &c, d)

	jsonOut := fs.String("json", "", "write the report as JSON to this file")
	htmlOut := fs.String("html", "", "write a self-contained HTML report with charts to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: liveroom loadgen [flags]\n\nReplays the seed's live room (or a flat fan-out test) against gateways and reports\njoin times, per-class delivery (expected, delivered, lost, duplicated, latency from send),\nreconnects and the gateways' CPU and memory. Times marked 'profile time' are divided by\n--speed. Every run stops by itself after --duration. With --whep N it also plays the room\nwith N WebRTC viewers (and, with --whep-publish, publishes a synthetic stream over WHIP)\nand reports their packets, loss, time to first keyframe, delay drift and the media\nserver's CPU per packet and memory per viewer.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Targets = append(c.Targets, t)
		}
	}
	key := *secret
	if key == "" {
		key = devSecret
	}
	c.Secret = []byte(key)
	if *quiet {
		c.Progress = io.Discard
	}
	r, err := loadgen.Run(ctx, c)
	if r == nil {
		return err
	}
	if r.WHEP != nil {
		printWHEP(r.WHEP)
	}
	if c.Viewers < 0 {
		return errors.Join(err, writeReports(r, *jsonOut, *htmlOut))
	}
	chat := r.Classes["chat"]
	fmt.Printf("viewers %d/%d peak, connect failures %d, reconnects %d, join p50/p99/max %.0f/%.0f/%.0f ms\n",
		r.ViewersPeak, r.ViewersTarget, r.ConnectFailures, r.Reconnects, r.JoinMS.P50, r.JoinMS.P99, r.JoinMS.Max)
	fmt.Printf("chat: expected %d delivered %d lost %d (windows short %d, at most %d) extra %d duplicated %d, p50/p99/max %.0f/%.0f/%.0f ms (lines stored %d)\n",
		chat.Expected, chat.Delivered, chat.Lost, chat.LostIn, chat.LostMax, chat.Extra, chat.Duplicated, chat.P50MS, chat.P99MS, chat.MaxMS, r.Chat.Stored)
	pin, ct := r.Classes["pin"], r.Classes["cheer_total"]
	fmt.Printf("pins %d: expected %d delivered %d lost %d, p50/p99/max %.0f/%.0f/%.0f ms\n",
		r.Pins, pin.Expected, pin.Delivered, pin.Lost, pin.P50MS, pin.P99MS, pin.MaxMS)
	cr := r.Classes["cheer_total_resent"]
	fmt.Printf("cheers: taps sent %d credited %d refused %d unknown %d, total %d -> %d, within bounds %v, exact %v; total seen p50/p99/max %.0f/%.0f/%.0f ms (lost %d; of them resent %d, p50/p99/max %.0f/%.0f/%.0f ms)\n",
		r.Cheers.Sent, r.Cheers.Acked, r.Cheers.Refused, r.Cheers.Unknown, r.Cheers.InitialTotal, r.Cheers.FinalTotal, r.Cheers.Bounded, r.Cheers.Exact,
		ct.P50MS, ct.P99MS, ct.MaxMS, ct.Lost, cr.Delivered, cr.P50MS, cr.P99MS, cr.MaxMS)
	if f := r.Flash; f.Sales > 0 {
		fmt.Printf("flash sales %d × %d units: presses %d, won %d, oversold %v, users with two wins %d, answers %v, answer p50/p99/max %.0f/%.0f/%.0f ms\n",
			f.Sales, f.Stock, f.Presses, f.Won, f.Oversold, f.MultiWins, f.Answers, f.AnswerMS.P50, f.AnswerMS.P99, f.AnswerMS.Max)
		if o := f.Orders; o.Checked {
			fmt.Printf("order stream: %d orders for these sales, %d of %d answered wins stored, %d duplicates, all wins stored %v\n",
				o.InStream, o.WonFound, f.Won, o.Duplicates, o.AllWinsStored)
		} else {
			fmt.Println("order stream: not checked (give --nats to read LR_ORDERS)")
		}
	}
	fmt.Printf("online: %d of %d viewers shown the right count at the end\n", r.Classes["online"].Delivered, r.Classes["online"].Expected)
	if r.Unanswered != 0 || len(r.Rejected) != 0 {
		fmt.Printf("actions unanswered %d, rejected %v\n", r.Unanswered, r.Rejected)
	}
	if r.FullS > 0 {
		fmt.Printf("room full after %.1f s\n", r.FullS)
	}
	if r.GatewayKiBPerViewer > 0 {
		fmt.Printf("gateways: %.1f KiB RSS per connected viewer at the peak\n", r.GatewayKiBPerViewer)
	}
	for _, g := range r.Gateways {
		fmt.Printf("gateway %s: cpu %.1f s, rss peak %.0f MiB %s\n", g.URL, g.CPUS, g.RSSMB, g.Error)
	}
	if werr := writeReports(r, *jsonOut, *htmlOut); werr != nil {
		return werr
	}
	return err
}

// writeReports writes the JSON and HTML reports asked for ("" skips one).
func writeReports(r *loadgen.Report, jsonOut, htmlOut string) error {
	if jsonOut != "" {
		if err := r.WriteJSON(jsonOut); err != nil {
			return err
		}
	}
	if htmlOut != "" {
		if err := r.WriteHTML(htmlOut); err != nil {
			return err
		}
	}
	return nil
}
