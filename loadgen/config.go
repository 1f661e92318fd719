package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Config says what to replay, against which gateways, and how hard. The zero value of
// every field but Targets and Secret means the default written on the field: the
// seed profile of ../shared/seed-profile.md. A negative count or rate means none
// (e.g. ChatBursts -1: no chat bursts). Config travels as JSON to child processes,
// so every field is plain data.
//
// Times in the profile (phases, waves, bursts, pins, sessions) are divided by Speed;
// per-second rates (chat lines/s, cheer taps/s) are not, so a burst is as intense as the
// seed's, only shorter. Heartbeats and grace periods are real time: the gateway's idle
// timeout does not know about Speed.
type Config struct {
	// Targets are the gateways' WebSocket URLs (ws://host:port/ws). Viewers are spread
	// over them round-robin. Required.
	Targets []string `json:"targets"`
	// AllowRemote permits targets whose host is not a loopback address. Off by default
	// so that a typo cannot aim a load test at someone else's machine.
	AllowRemote bool `json:"allow_remote,omitempty"`
	// NATS is the deployment's NATS URL, optional: after a run with flash sales the
	// load generator reads the order stream (LR_ORDERS) and checks that every win it
	// was answered is stored there once. Loopback only unless AllowRemote.
	NATS string `json:"nats,omitempty"`
	// Room is the room every viewer joins. Default "seed".
	Room string `json:"room"`
	// Secret signs the tokens the viewers and the host join with. Required.
	Secret []byte `json:"secret"`
	// Profile is "seed" (the 22k room's audience curve, chat bursts, churn) or "flat"
	// (all viewers join, then a constant chat rate for Hold). Default "seed".
	Profile string `json:"profile"`
	// Speed compresses the profile's time axis: 10 replays three hours in eighteen
	// minutes. Default 1.
	Speed float64 `json:"speed"`
	// Duration bounds the whole run, drain included; nothing runs after it. Default: the
	// profile's length divided by Speed, plus Drain.
	Duration time.Duration `json:"duration"`
	// Drain is how long, after the load stops, viewers keep reading until every line
	// sent has arrived. Default 10 s.
	Drain time.Duration `json:"drain"`

	// Viewers is the peak audience of WebSocket viewers. Default 22000; negative:
	// none (a WebRTC-only run with WHEP or WHEPPublish).
	Viewers int `json:"viewers"`
	// PerProcess is the most viewers one process holds; above it the run shards
	// itself over child processes (one process may hold at most 20000 open files here).
	// Default 9000.
	PerProcess int `json:"per_process"`
	// PortsPerSourceAddr is how many connections one source address carries before
	// the next 127.0.0.x is used (one address has ~28k ephemeral ports). When all
	// viewers fit, the kernel picks the source address. Default 20000.
	PortsPerSourceAddr int `json:"ports_per_source_addr"`
	// DialConcurrency caps connects in flight per process. Default 256.
	DialConcurrency int `json:"dial_concurrency"`

	// Seed profile: audience. Fractions are of Viewers.

	// ReminderWave is the first phase, in which ReminderShare of the peak joins.
	// Default 3 min, 0.45 (10k of 22k).
	ReminderWave  time.Duration `json:"reminder_wave"`
	ReminderShare float64       `json:"reminder_share"`
	// SharingEnd ends the sharing phase, at which the audience reaches the peak through
	// a steady climb plus SharingWaves waves of SharingWaveJoins joins each, every wave
	// spread over WaveLength. Default 30 min, 3 waves, 2000 joins (scaled by
	// Viewers/22000), 30 s.
	SharingEnd       time.Duration `json:"sharing_end"`
	SharingWaves     int           `json:"sharing_waves"`
	SharingWaveJoins int           `json:"sharing_wave_joins"`
	WaveLength       time.Duration `json:"wave_length"`
	// PlateauEnd ends the plateau: the audience wanders within ±PlateauJitter of the
	// peak while ChurnPerSec viewers join and as many leave every second (churn is
	// scaled by Viewers/22000). Default 120 min, 0.1, 10/s.
	PlateauEnd    time.Duration `json:"plateau_end"`
	PlateauJitter float64       `json:"plateau_jitter"`
	ChurnPerSec   float64       `json:"churn_per_sec"`
	// TailEnd ends the slow decay down to TailShare of the peak; then the rest leave
	// within EndLeave. Default 180 min, 0.45, 15 s.
	TailEnd   time.Duration `json:"tail_end"`
	TailShare float64       `json:"tail_share"`
	EndLeave  time.Duration `json:"end_leave"`
	// SessionMedian is the median of the log-normal session length; when the audience
	// must shrink, the viewers whose sessions end first leave first. Default 19 min
	// (mean ≈ 38 min).
	SessionMedian time.Duration `json:"session_median"`
	// Heartbeat is how often each viewer sends a `ping` command, jittered ±20 %, real
	// time. Default 30 s.
	Heartbeat time.Duration `json:"heartbeat"`

	// Seed profile: chat. Lines are sent by random connected viewers.

	// ChatRate is the room's normal chat, lines/s. Default 3.
	ChatRate float64 `json:"chat_rate"`
	// ChatBursts bursts of ChatBurstRate lines/s, each lasting ChatBurstLength, are
	// spread evenly over the profile. Default 20 bursts of 120/s for 20 s.
	ChatBursts      int           `json:"chat_bursts"`
	ChatBurstRate   float64       `json:"chat_burst_rate"`
	ChatBurstLength time.Duration `json:"chat_burst_length"`
	// ChatViewBudget is the most ordinary lines per second a viewer is owed: the
	// gateway may show a viewer of a busy room only a sample (host lines always). Lines
	// above it are reported as sampled, not lost. Match the gateway's chat budget;
	// negative: every line is owed. Default 20.
	ChatViewBudget int `json:"chat_view_budget"`

	// Seed profile: cheers.

	// CheerRate is taps/s room-wide, coalesced per viewer into one message every
	// 0.5–1 s. Default 31.6.
	CheerRate float64 `json:"cheer_rate"`
	// CheerBursts bursts of CheerBurstRate taps/s lasting CheerBurstLength each.
	// Default 4 bursts of 1500/s for 20 s.
	CheerBursts      int           `json:"cheer_bursts"`
	CheerBurstRate   float64       `json:"cheer_burst_rate"`
	CheerBurstLength time.Duration `json:"cheer_burst_length"`

	// Seed profile: the host (flash sales are not played yet).

	// PinEvery is how often the host pins a product (also in the flat profile while
	// it holds; at least 2 s apart). Default 5.5 min.
	PinEvery time.Duration `json:"pin_every"`
	// HostChatEvery is how often the host says something in chat. Default 1 min.
	HostChatEvery time.Duration `json:"host_chat_every"`
	// FlashSales is how many flash sales the host pins, spread evenly over the plateau
	// and tail: each a product with FlashStock units (one per user) whose sale starts
	// FlashLead after the pin. Every viewer that sees the pin presses `buy` when the
	// countdown ends (within the first second) and again, up to FlashPresses times,
	// 0.2–0.5 s apart, until it gets a final answer. Default 2 sales, 500 units,
	// 3 presses, 5 s (real time).
	FlashSales   int `json:"flash_sales"`
	FlashStock   int `json:"flash_stock"`
	FlashPresses int `json:"flash_presses"`
	// FlashMash makes every viewer press all FlashPresses times, final answer or not, as
	// thumbs do on a screen that lags: the herd of the target (30,000 presses/s
	// for 2 s is 20,000 viewers pressing 3 times).
	FlashMash bool          `json:"flash_mash,omitempty"`
	FlashLead time.Duration `json:"flash_lead"`

	// Flat profile.

	// Hold is how long the flat profile chats at FlatChatRate once every viewer has
	// joined. Default 60 s, 10 lines/s.
	Hold         time.Duration `json:"hold"`
	FlatChatRate float64       `json:"flat_chat_rate"`
	// FlatFlashSales is how many flash sales the flat profile holds, spread over Hold.
	// Default 0.
	FlatFlashSales int `json:"flat_flash_sales,omitempty"`
	// FlatCheerRate is cheer taps/s room-wide while the flat profile holds. Default 0.
	FlatCheerRate float64 `json:"flat_cheer_rate,omitempty"`
	// FlatJoinRate is joins/s while the flat profile fills the room; 0 means as fast as
	// DialConcurrency allows.
	FlatJoinRate float64 `json:"flat_join_rate"`

	// LeaveGrace is how long a leaving viewer keeps reading: lines sent before it
	// decided to leave and not received within LeaveGrace count as lost. It is real
	// time: while it lasts the viewer is still connected, so at high Speed the
	// gateways see up to churn × LeaveGrace more connections than the curve. Default 2 s.
	LeaveGrace time.Duration `json:"leave_grace"`

	// WebRTC (mediarun.go): viewers over WHEP and a publisher over WHIP on the media
	// server. They run in the parent process only, next to its WebSocket viewers.

	// WHEP is how many WebRTC viewers play the room, each a Pion peer connection with
	// its own UDP socket (one open file), at most MaxWHEP. Default 0: none.
	WHEP int `json:"whep,omitempty"`
	// WHEPURL is the media server's base URL (http://host:port): viewers POST to
	// WHEPURL/whep/{Room}, the publisher to WHEPURL/whip/{Room}, its CPU and memory
	// are read from WHEPURL/metrics. Loopback only unless AllowRemote; against a
	// loopback server ICE uses 127.0.0.1 alone. Default: the first target's host and
	// port over http(s) (`liveroom serve` mounts the media server next to the gateway).
	WHEPURL string `json:"whep_url,omitempty"`
	// WHEPPublish publishes a synthetic H.264 stream over WHIP (a host token signed
	// with Secret) before the viewers join: 720p30 at WHEPBitrate (~220 packets/s at
	// the default), a keyframe every WHEPKeyframeEvery and on the next frame after a
	// PLI, as an encoder that honours PLI does. Default false: someone else publishes.
	WHEPPublish bool `json:"whep_publish,omitempty"`
	// WHEPKeyframeEvery is the publisher's keyframe interval. Default 2 s.
	WHEPKeyframeEvery time.Duration `json:"whep_keyframe_every,omitempty"`
	// WHEPBitrate is the publisher's bitrate, bits/s. Default 1,800,000.
	WHEPBitrate int `json:"whep_bitrate,omitempty"`
	// WHEPJoinRate is WHEP requests per second while the viewers join. Default 50.
	WHEPJoinRate float64 `json:"whep_join_rate,omitempty"`
	// WHEPAnonymous sends WHEP requests without a token (the media server must allow
	// anonymous viewers). Default false: a viewer token per viewer, signed with Secret.
	WHEPAnonymous bool `json:"whep_anonymous,omitempty"`

	// Sharding: how a child process is started. Filled in by the parent.

	// Command starts a child: Command[0] is the program, the rest its first arguments;
	// "--shard i/n" is appended. Default: this executable with "loadgen".
	Command []string `json:"command,omitempty"`
	// Env is added to a child's environment.
	Env []string `json:"env,omitempty"`
	// Seed seeds the run's random choices; 0 picks one from the clock. A shard uses
	// Seed+i.
	Seed int64 `json:"seed,omitempty"`

	// Progress receives the live progress line once a second. Nil means os.Stderr;
	// io.Discard silences it. Not sent to children: they report to the parent.
	Progress io.Writer `json:"-"`
}

// Profiles.
const (
	ProfileSeed = "seed"
	ProfileFlat = "flat"
)

// MaxWHEP is the most WebRTC viewers one run holds: they all live in the parent
// process, each with a UDP socket, and leave room in fileBudget for the rest.
const MaxWHEP = 5000

// fileBudget is what a process may open here (20000) less a margin for the rest.
const fileBudget = 19000

// Errors returned by Run before anything is dialled.
var (
	ErrNoTargets  = errors.New("loadgen: no targets")
	ErrRemote     = errors.New("loadgen: target is not a loopback address (pass --allow-remote to permit it)")
	ErrBadProfile = errors.New("loadgen: unknown profile")
)

// Defaults returns the Config that the zero value stands for, for a room of viewers
// (0: 22000). Fields that scale with the audience are computed for that size.
func Defaults(viewers int) Config {
	return Config{Viewers: viewers}.withDefaults()
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	deff := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	defi := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Room == "" {
		c.Room = "seed"
	}
	if c.Profile == "" {
		c.Profile = ProfileSeed
	}
	deff(&c.Speed, 1)
	def(&c.Drain, 10*time.Second)
	defi(&c.Viewers, 22000)
	defi(&c.PerProcess, 9000)
	defi(&c.PortsPerSourceAddr, 20000)
	defi(&c.DialConcurrency, 256)
	def(&c.ReminderWave, 3*time.Minute)
	deff(&c.ReminderShare, 10000.0/22000)
	def(&c.SharingEnd, 30*time.Minute)
	defi(&c.SharingWaves, 3)
	defi(&c.SharingWaveJoins, c.Viewers*2000/22000)
	def(&c.WaveLength, 30*time.Second)
	def(&c.PlateauEnd, 120*time.Minute)
	deff(&c.PlateauJitter, 0.1)
	deff(&c.ChurnPerSec, 10*float64(c.Viewers)/22000)
	def(&c.TailEnd, 180*time.Minute)
	deff(&c.TailShare, 10000.0/22000)
	def(&c.EndLeave, 15*time.Second)
	def(&c.SessionMedian, 19*time.Minute)
	def(&c.Heartbeat, 30*time.Second)
	deff(&c.ChatRate, 3)
	defi(&c.ChatBursts, 20)
	deff(&c.ChatBurstRate, 120)
	def(&c.ChatBurstLength, 20*time.Second)
	defi(&c.ChatViewBudget, 20)
	deff(&c.CheerRate, 31.6)
	defi(&c.CheerBursts, 4)
	deff(&c.CheerBurstRate, 1500)
	def(&c.CheerBurstLength, 20*time.Second)
	def(&c.PinEvery, 330*time.Second)
	def(&c.HostChatEvery, time.Minute)
	defi(&c.FlashSales, 2)
	defi(&c.FlashStock, 500)
	defi(&c.FlashPresses, 3)
	def(&c.FlashLead, 5*time.Second)
	def(&c.Hold, 60*time.Second)
	deff(&c.FlatChatRate, 10)
	def(&c.LeaveGrace, 2*time.Second)
	def(&c.WHEPKeyframeEvery, 2*time.Second)
	defi(&c.WHEPBitrate, 1_800_000)
	deff(&c.WHEPJoinRate, 50)
	if c.Duration == 0 && c.Viewers < 0 {
		c.Duration = time.Minute // WebRTC only: no profile to follow
	}
	if c.Duration == 0 {
		c.Duration = c.scaled(c.profileLength()) + c.Drain
	}
	return c
}

// scaled divides a profile time by Speed.
func (c *Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Speed)
}

// profileLength is the unscaled length of the load phase.
func (c *Config) profileLength() time.Duration {
	if c.Profile == ProfileFlat {
		// Filling the room is bounded by the join rate; allow a generous minute.
		fill := time.Minute
		if c.FlatJoinRate > 0 {
			fill = time.Duration(float64(c.Viewers)/c.FlatJoinRate*float64(time.Second)) + 10*time.Second
		}
		return time.Duration(float64(fill+c.Hold) * c.Speed)
	}
	return c.TailEnd + c.EndLeave
}

// validate checks what defaults cannot fix.
func (c *Config) validate() error {
	if len(c.Targets) == 0 {
		return ErrNoTargets
	}
	if len(c.Secret) == 0 {
		return errors.New("loadgen: secret required")
	}
	if c.Profile != ProfileSeed && c.Profile != ProfileFlat {
		return fmt.Errorf("%w %q (want seed or flat)", ErrBadProfile, c.Profile)
	}
	if c.Speed <= 0 || c.PerProcess < 1 {
		return errors.New("loadgen: speed and per-process must be positive")
	}
	if c.Viewers < 0 && c.WHEP == 0 && !c.WHEPPublish {
		return errors.New("loadgen: no viewers: negative viewers needs WHEP viewers or the WHIP publisher")
	}
	if c.WHEP < 0 || c.WHEP > MaxWHEP {
		return fmt.Errorf("loadgen: WHEP viewers must be 0-%d (one UDP socket each, all in the parent process)", MaxWHEP)
	}
	// The parent holds the WHEP viewers, and the WebSocket viewers too when they fit
	// in one process: both need an open file each, 20000 at most per process here.
	if c.Viewers > 0 && c.Viewers <= c.PerProcess && c.Viewers+c.WHEP > fileBudget {
		return fmt.Errorf("loadgen: %d WebSocket + %d WHEP viewers in one process exceed %d open files; lower PerProcess to move the WebSocket viewers into child processes", c.Viewers, c.WHEP, fileBudget)
	}
	if c.WHEP > 0 || c.WHEPPublish {
		if _, err := mediaBase(c); err != nil {
			return err
		}
		if c.WHEPJoinRate <= 0 || c.WHEPBitrate <= 0 || c.WHEPKeyframeEvery <= 0 {
			return errors.New("loadgen: WHEP join rate, bitrate and keyframe interval must be positive")
		}
	}
	for _, t := range c.Targets {
		if err := checkTarget(t, c.AllowRemote); err != nil {
			return err
		}
	}
	if c.NATS != "" {
		return checkOrdersURL(c.NATS, c.AllowRemote)
	}
	return nil
}

// checkTarget refuses anything but a ws/wss URL on a loopback host (unless allowRemote).
func checkTarget(target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("loadgen: target %q: %w", target, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("loadgen: target %q: scheme must be ws or wss", target)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrRemote, target)
}

// metricsURL derives a gateway's Prometheus endpoint from its WebSocket URL.
func metricsURL(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	default:
		u.Scheme = "http"
	}
	u.Path, u.RawQuery, u.Fragment = "/metrics", "", ""
	return u.String()
}
